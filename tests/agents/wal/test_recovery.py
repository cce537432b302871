"""The writer's start after a crash, a power cut or damage on disk: it always starts, and says what it did."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import pytest

from auditship.agents.wal.record import LSN
from auditship.agents.wal.scanner import CHUNK_BYTES
from shipper.records import encode_record
from tests.agents.wal.sample import on_disk_size, open_wal, payload_for, segment_files

RECORD = on_disk_size(payload_for(1))


def write_records(wal_dir: Path, count: int, **settings: object) -> None:
    wal = open_wal(wal_dir, **settings)
    wal.append([payload_for(n) for n in range(1, count + 1)])
    wal.close()


def damage(path: Path, offset: int, data: bytes) -> bytes:
    """Overwrite bytes of `path` at `offset`; returns the file as it is afterwards."""
    with path.open("r+b") as file:
        file.seek(offset)
        file.write(data)
    return path.read_bytes()


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_torn_tail_is_cut_off_and_the_log_carries_on_in_a_new_segment(
    wal_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A record cut short at a segment's end (kill -9 mid-write) is truncated with a warning naming the
    file and byte offset; appends go on in a new segment."""
    write_records(wal_dir, 5)
    segment = segment_files(wal_dir)[0]
    with segment.open("ab") as file:
        file.write(encode_record(LSN.pack(6) + payload_for(6))[:20])
    wal = open_wal(wal_dir)
    assert segment.stat().st_size == 5 * RECORD
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert str(segment) in warning
    assert f"byte {5 * RECORD}" in warning
    assert not errors(caplog)
    assert wal.append([payload_for(6)]) == 6
    assert segment_files(wal_dir)[-1].name == f"{6:020d}.wal"
    assert [r.lsn for r in wal.records_after(0)] == [1, 2, 3, 4, 5, 6]
    wal.close()


@pytest.mark.parametrize(
    ("what", "offset", "data"),
    [
        ("checksum mismatch", 3 * RECORD + 30, b"X"),
        ("absurd length", 3 * RECORD, b"\xff\xff\xff\xff"),
        ("length pointing past the next record", 3 * RECORD, (RECORD + 3).to_bytes(4, "little")),
    ],
)
def test_a_damaged_record_mid_segment_is_quarantined_and_the_rest_salvaged(
    wal_dir: Path, caplog: pytest.LogCaptureFixture, what: str, offset: int, data: bytes
) -> None:
    """Damage in the middle of a segment: the segment is copied to quarantine/ as it was, the error names
    the file, the offset and the seqs lost, the records after the damage are kept, and the log starts."""
    write_records(wal_dir, 10)
    segment = segment_files(wal_dir)[0]
    damaged = damage(segment, offset, data)
    wal = open_wal(wal_dir)
    assert [r.lsn for r in wal.records_after(0)] == [1, 2, 3, 5, 6, 7, 8, 9, 10], what
    assert wal.next_lsn == 11
    [copy] = (wal_dir / "quarantine").iterdir()
    assert copy.read_bytes() == damaged
    [message] = errors(caplog)
    assert str(segment) in message
    assert f"byte {3 * RECORD}" in message
    assert "seqs 4-4 are lost" in message
    assert str(copy) in message
    wal.close()


def test_a_salvaged_segment_is_reported_once(wal_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The salvaged segment is rebuilt without its damage, so the next start finds nothing to report."""
    write_records(wal_dir, 10)
    damage(segment_files(wal_dir)[0], 3 * RECORD + 30, b"X")
    open_wal(wal_dir).close()
    caplog.clear()
    wal = open_wal(wal_dir)
    assert not errors(caplog)
    assert len(list((wal_dir / "quarantine").iterdir())) == 1
    assert segment_files(wal_dir)[0].stat().st_size == 9 * RECORD
    wal.close()


def test_a_record_whose_seq_does_not_rise_is_damage(wal_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A whole record with a good checksum but a seq at or below the one before (stale bytes on disk)
    is damage too: skipped, quarantined, reported."""
    write_records(wal_dir, 5)
    segment = segment_files(wal_dir)[0]
    with segment.open("ab") as file:
        file.write(encode_record(LSN.pack(2) + payload_for(2)))
        file.write(encode_record(LSN.pack(6) + payload_for(6)))
    wal = open_wal(wal_dir)
    assert [r.lsn for r in wal.records_after(0)] == [1, 2, 3, 4, 5, 6]
    assert len(errors(caplog)) == 1
    wal.close()


def test_a_zero_filled_tail_after_a_power_cut_is_cut_off(
    wal_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A tail of zeros (the file grew but its blocks never reached the disk) holds no record: it is
    quarantined, cut off, and the log starts after the last good seq."""
    write_records(wal_dir, 5)
    segment = segment_files(wal_dir)[0]
    with segment.open("ab") as file:
        file.write(bytes(4096))
    wal = open_wal(wal_dir)
    assert segment.stat().st_size == 5 * RECORD
    assert wal.next_lsn == 6
    [message] = errors(caplog)
    assert "records after seq 5 in this segment are lost" in message
    assert len(list((wal_dir / "quarantine").iterdir())) == 1
    wal.close()


def test_a_segment_of_garbage_between_good_ones_does_not_stop_the_start(
    wal_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A whole segment overwritten with random bytes loses what it held; the segments around it are
    read as before and the log starts (no refusal, no endless search)."""
    wal = open_wal(wal_dir, segment_bytes=3 * RECORD)
    for first in (1, 4, 7):
        wal.append([payload_for(n) for n in range(first, first + 3)])
    wal.close()
    middle = segment_files(wal_dir)[1]
    middle.write_bytes(random.Random(7).randbytes(64 * 1024))
    wal = open_wal(wal_dir)
    assert [r.lsn for r in wal.records_after(0)] == [1, 2, 3, 7, 8, 9]
    assert wal.next_lsn == 10
    assert middle.stat().st_size == 0
    assert str(middle) in errors(caplog)[0]
    wal.close()


def test_an_interrupted_salvage_leaves_nothing_behind(wal_dir: Path) -> None:
    """A rebuild cut short by a crash left a temporary file; the next start removes it (the segment it
    came from is still whole)."""
    write_records(wal_dir, 3)
    leftover = wal_dir / f"{1:020d}.wal.salvage"
    leftover.write_bytes(b"partial")
    os.chmod(leftover, 0o600)
    wal = open_wal(wal_dir)
    assert not leftover.exists()
    assert [r.lsn for r in wal.records_after(0)] == [1, 2, 3]
    wal.close()


@pytest.mark.parametrize("garbage", [CHUNK_BYTES - 10, CHUNK_BYTES + 3, 3 * CHUNK_BYTES])
def test_records_after_a_damaged_span_longer_than_a_read_chunk_are_salvaged(
    wal_dir: Path, caplog: pytest.LogCaptureFixture, garbage: int
) -> None:
    """The search past damage reads the file chunk by chunk; the next record is found wherever it
    starts, also across a chunk boundary, and nothing is reported lost when no seq was skipped."""
    write_records(wal_dir, 3)
    segment = segment_files(wal_dir)[0]
    with segment.open("ab") as file:
        file.write(random.Random(garbage).randbytes(garbage))
        for n in (4, 5, 6):
            file.write(encode_record(LSN.pack(n) + payload_for(n)))
    wal = open_wal(wal_dir)
    assert [r.lsn for r in wal.records_after(0)] == [1, 2, 3, 4, 5, 6]
    [message] = errors(caplog)
    assert f"bytes {3 * RECORD}-{3 * RECORD + garbage} skipped, no seq is lost" in message
    wal.close()
