"""Compaction merges a partition's old small parts into few large ones, and a reader of the lake sees every
row exactly once before, during and after it; covered parts go only after a grace period."""

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import pytest

from auditship.agents.crypto import Keyring
from auditship.agents.sinks.base import Delivery, Entry
from auditship.agents.sinks.parquet.compaction import CompactionPolicy, Compactor
from auditship.agents.sinks.parquet.config import ParquetSinkConfig
from auditship.agents.sinks.parquet.sink import ParquetSink
from auditship.ondisk.lake_layout import STAGING_PREFIX, live_parts, part_name, parts
from tests.agents.sinks.damage import DAMAGE, overwrite_footer
from tests.agents.sinks.entries import entries
from tests.waiting import wait_for

NOW = CompactionPolicy(min_age_s=0.0, grace_s=0.0)
"""Every part is old enough to merge, every covered part old enough to delete."""


@pytest.fixture
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    """The connection the Compactors of a test share, as the sink's writer and compactor do."""
    with duckdb.connect(config={"threads": 1}) as con:
        yield con


@pytest.fixture
def sink(data_dir: Path, keyring: Keyring) -> Iterator[ParquetSink]:
    """An opened sink that does not compact by itself: the tests run Compactors when they choose."""
    opened = ParquetSink(ParquetSinkConfig(compaction=False), data_dir, keyring)
    opened.open()
    yield opened
    opened.close()


def fill(
    sink: ParquetSink, keyring: Keyring, sizes: Sequence[int], services: str = "ab"
) -> list[list[Entry]]:
    """Write one batch per size, the seqs following on, the batches' services taken in turn from
    `services`; each batch becomes one part. Returns the batches."""
    start = 1 + max(lake_seqs(sink.lake), default=0)
    batches = []
    for number, size in enumerate(sizes):
        batch = entries(range(start, start + size), keyring, service_name=services[number % len(services)])
        assert sink.write_batch(batch) is Delivery.DELIVERED
        batches.append(batch)
        start += size
    return batches


def lake_seqs(lake: Path) -> list[int]:
    """The seqs of every row a reader sees (the live parts), in order."""
    paths = [str(path) for path in live_parts(lake)]
    if not paths:
        return []
    with duckdb.connect() as con:
        return [
            row[0]
            for row in con.execute("SELECT wal_seq FROM read_parquet(?) ORDER BY 1", [paths]).fetchall()
        ]


def part_names(sink: ParquetSink, service: str) -> list[str]:
    """Every part file of the service's partition, live or covered."""
    (directory,) = sink.lake.glob(f"date=*/service={service}")
    return [part.path.name for part in parts(directory)]


def live_names(sink: ParquetSink) -> list[str]:
    return [path.name for path in live_parts(sink.lake)]


def test_old_small_parts_become_one_part_per_partition_named_for_the_whole_range(
    sink: ParquetSink, db: duckdb.DuckDBPyConnection, keyring: Keyring
) -> None:
    """Twenty parts of 10 rows in two partitions: one run merges each partition into a single part whose
    name covers its first to its last seq; the covered parts are deleted at the next run."""
    fill(sink, keyring, [10] * 20)
    compactor = Compactor(sink.lake, db, NOW)

    done = compactor.run()

    assert (done.merged, done.into, done.deleted) == (20, 2, 0)
    assert live_names(sink) == [part_name(1, 190), part_name(11, 200)]
    assert len(part_names(sink, "a")) == 11  # the new part beside the ten it covers, until the next run
    assert lake_seqs(sink.lake) == list(range(1, 201))
    assert compactor.run().deleted == 20
    assert part_names(sink, "a") == [part_name(1, 190)]
    assert lake_seqs(sink.lake) == list(range(1, 201))


def test_covered_parts_stay_for_the_grace_period(
    sink: ParquetSink, db: duckdb.DuckDBPyConnection, keyring: Keyring
) -> None:
    """A reader may have listed the small parts just before the merge: they are kept until the part that
    covers them is grace_s old."""
    fill(sink, keyring, [5] * 4)
    compactor = Compactor(sink.lake, db, CompactionPolicy(min_age_s=0.0, grace_s=3600.0))
    compactor.run()
    assert compactor.run().deleted == 0
    assert len(part_names(sink, "a")) == 3


def test_young_parts_are_left_alone(
    sink: ParquetSink, db: duckdb.DuckDBPyConnection, keyring: Keyring
) -> None:
    fill(sink, keyring, [10] * 6)
    assert Compactor(sink.lake, db, CompactionPolicy(min_age_s=3600.0)).run().merged == 0
    assert len(live_names(sink)) == 6


def test_a_large_part_breaks_a_run_and_a_merge_stops_at_target_bytes(
    sink: ParquetSink, db: duckdb.DuckDBPyConnection, keyring: Keyring
) -> None:
    """With room for two small parts per merge, and one part beyond target_bytes in the middle: the
    small parts merge in pairs on each side of it, and no merged part spans it."""
    fill(sink, keyring, [10, 10, 2_000, 10, 10, 10, 10], services="a")
    sizes = {path.name: path.stat().st_size for path in live_parts(sink.lake)}
    large = sizes.pop(part_name(21, 2020))
    target = 2 * max(sizes.values()) + 1
    assert large > target and 3 * min(sizes.values()) > target

    Compactor(sink.lake, db, CompactionPolicy(min_age_s=0.0, target_bytes=target)).run()

    assert live_names(sink) == [
        part_name(1, 20),
        part_name(21, 2020),
        part_name(2021, 2040),
        part_name(2041, 2060),
    ]
    assert lake_seqs(sink.lake) == list(range(1, 2061))


def test_the_sink_compacts_between_batches_at_most_once_per_interval(
    data_dir: Path, keyring: Keyring
) -> None:
    """Every batch triggers a run with an interval of 0; with an hour, only the first batch does (when
    there is nothing to merge yet)."""
    for interval, live in ((0.0, 1), (3600.0, 3)):
        policy = CompactionPolicy(interval_s=interval, min_age_s=0.0, grace_s=0.0)
        compacting = ParquetSink(ParquetSinkConfig(path=f"lake-{interval}"), data_dir, keyring, policy)
        compacting.open()
        fill(compacting, keyring, [5, 5, 5], services="a")
        compacting.close()
        assert len(live_names(compacting)) == live, interval


def test_a_compaction_cut_short_leaves_a_lake_read_once_and_finished_later(
    sink: ParquetSink, db: duckdb.DuckDBPyConnection, keyring: Keyring
) -> None:
    """A kill after the merged part was renamed into place, before anything was deleted, with a staging
    file left too: readers see each row once; the next open removes the staging file; a batch offered
    again is skipped, the next ones are written after the merged range."""
    batches = fill(sink, keyring, [5] * 6)
    Compactor(sink.lake, db, CompactionPolicy(min_age_s=0.0, grace_s=3600.0)).run()
    (directory,) = sink.lake.glob("date=*/service=a")
    torn = directory / f"{STAGING_PREFIX}{part_name(1, 99)}"
    torn.write_bytes(b"PAR1")
    sink.close()
    assert lake_seqs(sink.lake) == list(range(1, 31))

    restarted = ParquetSink(ParquetSinkConfig(compaction=False), sink.lake.parent, keyring)
    restarted.open()
    assert not torn.exists()
    assert restarted.write_batch(batches[4]) is Delivery.DELIVERED  # seqs 21-25
    fill(restarted, keyring, [10], services="a")
    restarted.close()
    assert lake_seqs(sink.lake) == list(range(1, 41))


def test_readers_see_every_row_exactly_once_while_parts_are_written_compacted_and_deleted(
    sink: ParquetSink, db: duckdb.DuckDBPyConnection, keyring: Keyring
) -> None:
    """A reader thread counts the lake in a loop while the main thread keeps writing batches and compacting
    (merging, merging merged parts again, deleting covered parts): no count has a row twice or misses one."""
    fill(sink, keyring, [20] * 10)
    written = 200  # rows in the lake; set only after they are, so a reader may see more, never fewer
    stop = threading.Event()
    seen: list[tuple[int, int, int]] = []
    failures: list[BaseException] = []

    def reader() -> None:
        with duckdb.connect() as con:
            deadline = time.monotonic() + 60
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    floor = written
                    paths = [str(path) for path in live_parts(sink.lake)]
                    counts = con.execute(
                        "SELECT count(*), count(DISTINCT wal_seq) FROM read_parquet(?)", [paths]
                    ).fetchone()
                    assert counts is not None
                    seen.append((floor, *counts))
            except BaseException as exc:
                failures.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    # The grace period is far longer than any of these queries takes from listing to opening its files.
    compactor = Compactor(sink.lake, db, CompactionPolicy(min_age_s=0.0, grace_s=1.0, target_bytes=40_000))
    totals = {"merged": 0, "deleted": 0}

    def compact() -> int:
        done = compactor.run()
        totals["merged"] += done.merged
        totals["deleted"] += done.deleted
        return done.deleted

    try:
        for round_ in range(18):
            fill(sink, keyring, [20] * 5)
            written += 100
            compact()
            if round_ in (8, 17):  # let covered parts age past the grace period while the reader reads
                wait_for(compact, 10, "covered parts deleted after the grace period")
    finally:
        stop.set()
        thread.join(30)

    assert not failures, failures
    assert len(seen) > 20, "the reader should have run throughout"
    assert totals["merged"] > 50 and totals["deleted"] > 50, totals
    twice = [s for s in seen if s[1] != s[2]]
    missing = [s for s in seen if s[1] < s[0]]
    assert not twice and not missing, (twice[:3], missing[:3])
    assert lake_seqs(sink.lake) == list(range(1, 2_001))


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_part_that_cannot_be_read_goes_to_the_quarantine_and_the_rest_of_its_run_is_merged(
    sink: ParquetSink, db: duckdb.DuckDBPyConnection, keyring: Keyring, caplog, damage: str
) -> None:
    """Five parts, the middle one damaged: it is moved to data_dir/quarantine/lake/ under its path in the
    lake (outside the lake, where no glob over it finds it), logged and counted; the other four merge."""
    fill(sink, keyring, [10] * 5, services="a")
    damaged = live_parts(sink.lake)[2]
    DAMAGE[damage][0](damaged)
    compactor = Compactor(sink.lake, db, NOW)

    with caplog.at_level(logging.ERROR, logger="auditship.sinks.parquet"):
        done = compactor.run()

    quarantined = sink.lake.parent / "quarantine" / "lake" / damaged.relative_to(sink.lake)
    assert (done.merged, done.into, compactor.quarantined) == (4, 1, 1)
    assert quarantined.is_file() and not damaged.exists()
    assert live_names(sink) == [part_name(1, 50)]
    assert lake_seqs(sink.lake) == [*range(1, 21), *range(31, 51)]
    assert not quarantined.is_relative_to(sink.lake)
    (record,) = caplog.records
    assert record.getMessage().startswith(f"parquet sink: {damaged} cannot be read (")
    assert f"moved to {quarantined}" in record.getMessage()


def test_the_sink_counts_the_parts_its_compaction_quarantines(data_dir: Path, keyring: Keyring) -> None:
    """A sink that compacts at every batch, with a part damaged between two batches: the next batch is
    delivered, the damaged part is quarantined and counted, the others are merged."""
    policy = CompactionPolicy(interval_s=0.0, min_age_s=0.0, grace_s=0.0)
    compacting = ParquetSink(ParquetSinkConfig(), data_dir, keyring, policy)
    compacting.open()
    try:
        for first in (1, 6, 11):
            batch = entries(range(first, first + 5), keyring, service_name="a")
            assert compacting.write_batch(batch) is Delivery.DELIVERED
            if first == 1:
                overwrite_footer(live_parts(compacting.lake)[0])
        assert compacting.counters == {"quarantined_parts": 1}
        assert live_names(compacting) == [part_name(6, 15)]
    finally:
        compacting.close()
