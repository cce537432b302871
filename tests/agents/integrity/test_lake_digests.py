"""The parquet sink's digests through what can go wrong between a record and its act: a merge recorded
but never put in place (a crash), parts published by a write that then failed, a part retention removed
before its digest. Each leaves a directory that verifies."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditship.agents.config import IntegrityConfig
from auditship.agents.crypto import Keyring
from auditship.agents.integrity.chain import ChainWriter, Change
from auditship.agents.integrity.removals import record_removals
from auditship.agents.integrity.signing import Signer
from auditship.agents.sinks.base import Delivery
from auditship.agents.sinks.parquet.config import ParquetSinkConfig
from auditship.agents.sinks.parquet.digests import LakeDigests
from auditship.agents.sinks.parquet.sink import ParquetSink
from auditship.ondisk.digests import (
    DigestedObject,
    RemovedObject,
    chain_dir,
    digest_name,
    numbers,
    read_digest,
)
from auditship.ondisk.lake_layout import live_parts, part_name
from auditship.query.verify.run import verify
from tests.agents.sinks.entries import entries


class Lake:
    def __init__(self, root: Path) -> None:
        self.data = root / "data"
        self.keys = root / "keys"
        self.keyring = Keyring.load_or_create(self.keys)
        self.signer = Signer.load_or_create(self.keys)

    def writer(self) -> ChainWriter:
        return ChainWriter(self.data, "parquet", self.signer, self.keys)

    def sink(self) -> ParquetSink:
        digests = LakeDigests(self.writer(), IntegrityConfig(), self.data, self.data / "lake")
        sink = ParquetSink(ParquetSinkConfig(compaction=False), self.data, self.keyring, digests=digests)
        sink.open()
        return sink

    def problems(self) -> dict[str, str]:
        report = verify(self.data, self.keys, sink="parquet")
        return {f.path: str(f.verdict) for f in report.findings if f.verdict != "valid"}

    def newest(self) -> str:
        directory = chain_dir(self.data, "parquet")
        return read_digest(directory / digest_name(numbers(directory)[-1])).digest.reason


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path)


def test_a_merge_recorded_but_never_put_in_place_is_recorded_undone_at_the_next_start(lake: Lake) -> None:
    sink = lake.sink()
    for start in (1, 11):
        assert sink.write_batch(entries(range(start, start + 10), lake.keyring)) is Delivery.DELIVERED
    sink.close()
    first, second = sorted(live_parts(lake.data / "lake"))
    merged = first.with_name(part_name(1, 20))
    lake.writer().append(
        Change(
            reason="compaction",
            objects=[
                DigestedObject(merged.relative_to(lake.data).as_posix(), "part", 1, "00" * 32, 1, 20, 20)
            ],
            removed=[
                RemovedObject(path.relative_to(lake.data).as_posix(), "compaction", "merged", "merged")
                for path in (first, second)
            ],
        )
    )
    assert lake.problems() == {merged.relative_to(lake.data).as_posix(): "missing"}

    lake.sink().close()

    assert lake.problems() == {}


def test_parts_a_failed_write_published_are_digested_after_it(lake: Lake) -> None:
    """The first partition's part is in place when the second cannot be made (its date directory is a
    file): the write is ERRORED, and the part it left goes into the next digest, its seqs counted."""
    sink = lake.sink()
    assert sink.write_batch(entries(range(1, 6), lake.keyring, service_name="a")) is Delivery.DELIVERED
    blocker = lake.data / "lake" / "date=2026-03-10" / "service=b"
    blocker.write_text("not a directory")
    batch = entries(range(6, 9), lake.keyring, service_name="a") + entries(
        range(9, 11), lake.keyring, service_name="b"
    )
    assert sink.write_batch(batch) is Delivery.ERRORED
    blocker.unlink()
    assert sink.write_batch(batch) is Delivery.DELIVERED
    sink.close()
    assert lake.problems() == {}
    listed = [
        o.path
        for n in numbers(chain_dir(lake.data, "parquet"))
        for o in read_digest(chain_dir(lake.data, "parquet") / digest_name(n)).digest.objects
    ]
    assert any(path.endswith(part_name(6, 8)) for path in listed)


def test_a_part_retention_removed_before_its_digest_stays_removed_and_counted(lake: Lake) -> None:
    sink = lake.sink()
    assert sink.write_batch(entries(range(1, 6), lake.keyring)) is Delivery.DELIVERED
    (part,) = live_parts(lake.data / "lake")
    assert record_removals(lake.data, lake.keys, "parquet", [part], reason="retention", policy="test") is None
    part.unlink()
    sink.close()
    assert lake.newest() == "shutdown"
    assert lake.problems() == {}
