"""A sink's reader: batches, cursor, rewind, and what it does with torn tails, damage and gaps."""

from __future__ import annotations

import logging
import stat
import time
from pathlib import Path

import pytest

from auditship.agents.errors import WalError
from auditship.agents.wal import WalReader, WalRecord
from auditship.agents.wal.cursor import cursor_path, write_cursor
from auditship.agents.wal.record import LSN, encode_records
from auditship.agents.wal.scanner import CHUNK_BYTES, SegmentScanner
from shipper.records import encode_record, scan_records
from tests.agents.wal.sample import on_disk_size, open_wal, payload_for, segment_files

RECORD = on_disk_size(payload_for(1))
MAX_CALLS = 1000


def read_all(reader: WalReader, max_records: int = 1000, max_bytes: int = 1 << 20) -> list[WalRecord]:
    """Read until caught up (bounded in calls)."""
    records: list[WalRecord] = []
    for _ in range(MAX_CALLS):
        batch = reader.read(max_records, max_bytes)
        if not batch:
            return records
        records.extend(batch)
    raise AssertionError(f"still reading after {MAX_CALLS} calls, at seq {reader.position}")


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_reading_with_no_wal_yet_returns_nothing(wal_dir: Path) -> None:
    """No directory, or a directory without segments: nothing to read, no error."""
    reader = WalReader(wal_dir, "file")
    assert reader.read(10, 1000) == []
    assert (reader.committed, reader.position) == (0, 0)
    wal_dir.mkdir(parents=True)
    assert reader.read(10, 1000) == []
    reader.close()


def test_read_stops_at_max_records_or_max_bytes(wal_dir: Path) -> None:
    """A batch holds at most max_records records and at most max_bytes of payload."""
    wal = open_wal(wal_dir)
    wal.append([payload_for(n) for n in range(1, 11)])
    reader = WalReader(wal_dir, "file")
    assert [r.lsn for r in reader.read(4, 1 << 20)] == [1, 2, 3, 4]
    size = len(payload_for(1))
    assert [r.lsn for r in reader.read(100, 3 * size)] == [5, 6, 7]
    assert reader.position == 7
    assert [r.payload for r in reader.read(100, 1 << 20)] == [payload_for(n) for n in range(8, 11)]
    assert reader.read(100, 1 << 20) == []
    reader.close()
    wal.close()


def test_a_record_bigger_than_max_bytes_and_than_a_chunk_is_still_read(wal_dir: Path) -> None:
    """A record larger than max_bytes comes alone rather than never; one larger than the reader's read
    chunk is read whole."""
    wal = open_wal(wal_dir)
    big = payload_for(2, CHUNK_BYTES * 2 + 5)
    wal.append([payload_for(1), big, payload_for(3)])
    reader = WalReader(wal_dir, "file")
    assert [r.lsn for r in reader.read(10, 10)] == [1]
    assert reader.read(10, 10) == [WalRecord(2, big)]
    assert [r.lsn for r in reader.read(10, 10)] == [3]
    reader.close()
    wal.close()


def test_reading_follows_the_log_across_segments(wal_dir: Path) -> None:
    """Records come in seq order across every segment, none twice, none skipped."""
    wal = open_wal(wal_dir, segment_bytes=5 * RECORD)
    for first in range(1, 100, 3):
        wal.append([payload_for(n) for n in range(first, first + 3)])
    reader = WalReader(wal_dir, "file")
    assert read_all(reader, max_records=7) == [WalRecord(n, payload_for(n)) for n in range(1, 100)]
    reader.close()
    wal.close()


def test_commit_is_durable_and_a_new_reader_starts_after_it(wal_dir: Path) -> None:
    """A committed seq survives the reader: the next one (after a restart) starts right after it. The
    cursor file is owner-only and holds the seq."""
    wal = open_wal(wal_dir, segment_bytes=4 * RECORD)
    wal.append([payload_for(n) for n in range(1, 4)])
    wal.append([payload_for(n) for n in range(4, 7)])
    reader = WalReader(wal_dir, "file")
    reader.read(5, 1 << 20)
    reader.commit(5)
    reader.close()
    path = cursor_path(wal_dir, "file")
    assert path.read_text() == "5\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = WalReader(wal_dir, "file")
    assert (again.committed, again.position) == (5, 5)
    assert [r.lsn for r in again.read(10, 1 << 20)] == [6]
    again.close()
    wal.close()


def test_rewind_reads_the_uncommitted_records_again(wal_dir: Path) -> None:
    """After rewind() the reader returns what it returned since the last commit, also when that spans
    segments."""
    wal = open_wal(wal_dir, segment_bytes=4 * RECORD)
    for first in range(1, 13, 3):
        wal.append([payload_for(n) for n in range(first, first + 3)])
    reader = WalReader(wal_dir, "file")
    first = reader.read(2, 1 << 20)
    reader.commit(2)
    second = reader.read(3, 1 << 20)
    reader.rewind()
    assert (reader.position, reader.read(3, 1 << 20)) == (2, second)
    reader.commit(5)
    everything = read_all(reader)
    reader.rewind()
    assert read_all(reader) == everything
    assert [r.lsn for r in first + second + everything] == list(range(1, 13))
    reader.close()
    wal.close()


def test_commit_outside_what_was_read_is_refused(wal_dir: Path) -> None:
    """Committing a seq not yet read would skip records; committing below the cursor would move it back."""
    wal = open_wal(wal_dir)
    wal.append([payload_for(n) for n in range(1, 6)])
    reader = WalReader(wal_dir, "file")
    reader.read(3, 1 << 20)
    with pytest.raises(ValueError, match="outside"):
        reader.commit(4)
    reader.commit(3)
    with pytest.raises(ValueError, match="outside"):
        reader.commit(2)
    reader.close()
    wal.close()


@pytest.mark.parametrize("content", [b"", b"twelve\n", b"-3\n", b"12 13\n", b"\x00\x00"])
def test_a_garbage_cursor_is_a_wal_error_naming_the_file(wal_dir: Path, content: bytes) -> None:
    """A cursor that is not a seq stops the sink with a WalError naming the file: guessing 0 would send
    everything again, guessing higher would skip events."""
    path = cursor_path(wal_dir, "file")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(WalError, match=str(path)):
        WalReader(wal_dir, "file")


def test_a_sink_name_that_is_not_a_file_name_is_refused(wal_dir: Path) -> None:
    """A sink name is a cursor's file name: one that could leave the directory is refused."""
    for name in ("../file", ".hidden", "a/b", ""):
        with pytest.raises(ValueError, match="cursor file"):
            WalReader(wal_dir, name)


def test_a_cursor_before_the_oldest_segment_starts_at_the_oldest_and_says_so(
    wal_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sink added after segments it never read were deleted starts at the oldest record left, and the
    gap is logged as an error, once."""
    wal = open_wal(wal_dir, ("sql",), segment_bytes=3 * RECORD)
    for first in (1, 4, 7):
        wal.append([payload_for(n) for n in range(first, first + 3)])
    write_cursor(cursor_path(wal_dir, "sql"), 6)
    wal.collect()
    reader = WalReader(wal_dir, "file")
    assert [r.lsn for r in read_all(reader)] == [7, 8, 9]
    reader.rewind()
    assert [r.lsn for r in read_all(reader)] == [7, 8, 9]
    [message] = errors(caplog)
    assert "records 1-6 are gone" in message
    reader.close()
    wal.close()


def test_a_torn_tail_in_the_segment_being_written_means_not_yet(
    wal_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Half a record at the end of the newest segment is a write in progress: the reader returns what
    is whole, says nothing, and returns the record once the rest of it is there."""
    wal = open_wal(wal_dir)
    wal.append([payload_for(1)])
    segment = segment_files(wal_dir)[-1]
    record = encode_record(LSN.pack(2) + payload_for(2))
    with segment.open("ab") as file:
        file.write(record[:5])
    reader = WalReader(wal_dir, "file")
    assert [r.lsn for r in reader.read(10, 1 << 20)] == [1]
    assert reader.read(10, 1 << 20) == []
    with segment.open("ab") as file:
        file.write(record[5:30])
    assert reader.read(10, 1 << 20) == []
    with segment.open("ab") as file:
        file.write(record[30:])
    assert reader.read(10, 1 << 20) == [WalRecord(2, payload_for(2))]
    assert not caplog.records
    reader.close()
    wal.close()


def test_a_reader_learns_a_segment_is_complete_before_reading_it_to_its_end(
    wal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: the reader reads the newest segment to its end; the writer appends one more record to
    it and rolls to a new segment; only then does the reader see the new segment. A reader that checked
    for a newer segment after reading would skip that record; this one checked before, so it reads it."""
    wal = open_wal(wal_dir, segment_bytes=2 * RECORD)
    wal.append([payload_for(1)])
    reader = WalReader(wal_dir, "file")
    assert [r.lsn for r in reader.read(10, 1 << 20)] == [1]
    real_refill = SegmentScanner._refill
    raced = []

    def refill_then_race(scanner: SegmentScanner) -> bool:
        grew = real_refill(scanner)
        if not grew and not raced:
            raced.append(True)
            wal.append([payload_for(2)])  # the last record of segment 1
            wal.append([payload_for(3)])  # rolls: segment 3 now exists
        return grew

    monkeypatch.setattr(SegmentScanner, "_refill", refill_then_race)
    seen: list[int] = []
    for _ in range(10):  # the read that raced returns nothing yet; later ones return the rest
        seen.extend(r.lsn for r in reader.read(10, 1 << 20))
    assert raced
    assert seen == [2, 3]
    reader.close()
    wal.close()


def test_damage_in_a_complete_segment_is_skipped_and_reported_once(
    wal_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A reader meeting a damaged record (before any writer recovery) skips to the next good record,
    logs the damage once even when it reads it again, and neither stops nor spins."""
    wal = open_wal(wal_dir, segment_bytes=10 * RECORD)
    wal.append([payload_for(n) for n in range(1, 11)])
    wal.append([payload_for(n) for n in range(11, 13)])
    segment = segment_files(wal_dir)[0]
    with segment.open("r+b") as file:
        file.seek(3 * RECORD + 20)
        file.write(b"X")
    reader = WalReader(wal_dir, "file")
    expected = [1, 2, 3, *range(5, 13)]
    assert [r.lsn for r in read_all(reader)] == expected
    reader.rewind()
    assert [r.lsn for r in read_all(reader)] == expected
    [message] = errors(caplog)
    assert str(segment) in message
    assert f"byte {3 * RECORD}" in message
    assert "to seq 5" in message
    reader.close()
    wal.close()


def test_damage_in_the_segment_of_a_dead_writer_neither_stops_nor_spins_the_reader(
    wal_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer died leaving garbage at the end of its segment (a power cut): the reader returns what
    is good, then nothing (quickly, every time) until a restarted writer has recovered and appends
    again; then it goes on."""
    wal = open_wal(wal_dir)
    wal.append([payload_for(n) for n in range(1, 6)])
    wal.close()
    segment = segment_files(wal_dir)[0]
    with segment.open("ab") as file:
        file.write(bytes(3000))
    reader = WalReader(wal_dir, "file")
    assert [r.lsn for r in read_all(reader)] == [1, 2, 3, 4, 5]
    started = time.monotonic()
    for _ in range(100):
        assert reader.read(10, 1 << 20) == []
    assert time.monotonic() - started < 5
    assert len(errors(caplog)) == 1
    wal = open_wal(wal_dir)
    wal.append([payload_for(6)])
    assert read_all(reader) == [WalRecord(6, payload_for(6))]
    reader.close()
    wal.close()


def test_a_reader_waiting_in_a_dead_writers_segment_of_garbage_misses_nothing_after_restart(
    wal_dir: Path,
) -> None:
    """The newest segment holds nothing but garbage (a power cut before any of it reached the disk): a
    reader waits somewhere inside it; the restarted writer empties it but does not append into it
    (that would write under the reader), so the reader gets every new record."""
    wal = open_wal(wal_dir, segment_bytes=10 * RECORD)
    wal.append([payload_for(n) for n in range(1, 11)])
    wal.append([payload_for(11)])
    wal.close()
    newest = segment_files(wal_dir)[-1]
    newest.write_bytes(bytes(3000))
    reader = WalReader(wal_dir, "file")
    assert [r.lsn for r in read_all(reader)] == list(range(1, 11))
    wal = open_wal(wal_dir)
    last = wal.append([payload_for(n) for n in range(wal.next_lsn, wal.next_lsn + 60)])
    assert [r.lsn for r in read_all(reader)] == list(range(last - 59, last + 1))
    reader.close()
    wal.close()


def test_damage_mid_segment_being_written_is_skipped_to_the_records_after_it(wal_dir: Path) -> None:
    """Damage inside the newest segment: the reader skips to the next whole record with a larger seq
    and keeps following the writer."""
    wal = open_wal(wal_dir)
    wal.append([payload_for(n) for n in range(1, 6)])
    with segment_files(wal_dir)[0].open("r+b") as file:
        file.seek(RECORD + 9)
        file.write(b"X")
    reader = WalReader(wal_dir, "file")
    assert [r.lsn for r in read_all(reader)] == [1, 3, 4, 5]
    wal.append([payload_for(6)])
    assert [r.lsn for r in read_all(reader)] == [6]
    reader.close()
    wal.close()


def test_a_salvaged_segment_replaced_under_a_reader_is_read_on_undisturbed(wal_dir: Path) -> None:
    """A reader inside a damaged segment when a restarting writer rebuilds it keeps reading the file it
    opened, and then follows the writer into its new segment."""
    wal = open_wal(wal_dir)
    wal.append([payload_for(n) for n in range(1, 11)])
    wal.close()
    with segment_files(wal_dir)[0].open("r+b") as file:
        file.seek(6 * RECORD + 9)
        file.write(b"X")
    reader = WalReader(wal_dir, "file")
    assert [r.lsn for r in reader.read(3, 1 << 20)] == [1, 2, 3]
    wal = open_wal(wal_dir)
    wal.append([payload_for(11)])
    assert [r.lsn for r in read_all(reader)] == [4, 5, 6, 8, 9, 10, 11]
    reader.close()
    wal.close()


def test_a_batch_of_records_is_what_encode_record_makes_of_each_and_reads_back() -> None:
    """encode_records writes each payload once into the batch, with its checksum run on from its LSN's:
    the bytes must be those of shipper.records.encode_record (what every other reader of the format
    checks), and the scanner must give each record back."""
    payloads = [b"", b"x", payload_for(7), bytes(range(256)) * 3]
    written = encode_records(41, payloads)
    assert written == b"".join(encode_record(LSN.pack(lsn) + p) for lsn, p in enumerate(payloads, 41))
    assert [(LSN.unpack(body[: LSN.size])[0], body[LSN.size :]) for _, body in scan_records(written)] == [
        (41 + index, payload) for index, payload in enumerate(payloads)
    ]
