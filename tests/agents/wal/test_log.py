"""The writer: seqs, segments, fsync policies, size, collection, restarts."""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from auditship.agents.errors import WalError
from auditship.agents.wal import WalReader, WalRecord
from auditship.agents.wal.cursor import cursor_path, write_cursor
from tests.agents.wal.sample import on_disk_size, open_wal, payload_for, segment_files


class CountingOs:
    """Stands in for the `os` module inside one WAL module, counting the calls it is asked to."""

    def __init__(self, *names: str) -> None:
        self.calls: Counter[str] = Counter()
        self.names = names

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name not in self.names:
            return real

        def counted(*args: Any) -> Any:
            self.calls[name] += 1
            return real(*args)

        return counted


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def batch(first: int, count: int) -> list[bytes]:
    return [payload_for(number) for number in range(first, first + count)]


def test_seqs_start_at_one_and_are_consecutive(wal_dir: Path) -> None:
    """The first record gets seq 1; each append returns its last seq; next_seq is the one after."""
    wal = open_wal(wal_dir)
    assert wal.next_lsn == 1
    assert wal.append(batch(1, 3)) == 3
    assert wal.append(batch(4, 2)) == 5
    assert wal.next_lsn == 6
    assert list(wal.records_after(0)) == [WalRecord(n, payload_for(n)) for n in range(1, 6)]
    wal.close()


def test_appending_nothing_assigns_no_seq(wal_dir: Path) -> None:
    """An empty batch writes nothing and returns the last seq already assigned."""
    wal = open_wal(wal_dir)
    wal.append(batch(1, 2))
    assert wal.append([]) == 2
    assert wal.next_lsn == 3
    wal.close()


def test_a_batch_is_one_write(wal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """However many records a batch holds, it reaches the file with a single write()."""
    wal = open_wal(wal_dir)
    counting = CountingOs("write")
    monkeypatch.setattr("auditship.ondisk.files.os", counting)
    wal.append(batch(1, 1000))
    assert counting.calls["write"] == 1
    wal.close()


def test_segments_roll_past_segment_bytes(wal_dir: Path) -> None:
    """A batch that would take the segment past segment_bytes starts a new one, named by its first seq."""
    record = on_disk_size(payload_for(1))
    wal = open_wal(wal_dir, segment_bytes=3 * record)
    for first in (1, 4, 7, 10):
        wal.append(batch(first, 3))
    names = [path.name for path in segment_files(wal_dir)]
    assert names == [f"{first:020d}.wal" for first in (1, 4, 7, 10)]
    assert all(path.stat().st_size == 3 * record for path in segment_files(wal_dir))
    assert [r.lsn for r in wal.records_after(0)] == list(range(1, 13))
    wal.close()


def test_a_batch_larger_than_a_segment_still_goes_in_whole(wal_dir: Path) -> None:
    """A single batch bigger than segment_bytes is not split: one segment holds it."""
    wal = open_wal(wal_dir, segment_bytes=100)
    wal.append(batch(1, 10))
    wal.append(batch(11, 10))
    assert [path.name for path in segment_files(wal_dir)] == [f"{1:020d}.wal", f"{11:020d}.wal"]
    wal.close()


def test_size_bytes_counts_live_segments_and_over_limit_follows_it(wal_dir: Path) -> None:
    """size_bytes is the total size of the segment files; over_limit once it reaches max_bytes."""
    record = on_disk_size(payload_for(1))
    wal = open_wal(wal_dir, ("a",), segment_bytes=3 * record, max_bytes=7 * record)
    wal.append(batch(1, 3))
    wal.append(batch(4, 3))
    assert wal.size_bytes() == 6 * record == sum(p.stat().st_size for p in segment_files(wal_dir))
    assert not wal.over_limit()
    wal.append(batch(7, 1))
    assert wal.over_limit()
    write_cursor(cursor_path(wal_dir, "a"), 6)
    wal.collect()
    assert wal.size_bytes() == sum(p.stat().st_size for p in segment_files(wal_dir)) == record
    assert not wal.over_limit()
    wal.close()


def test_room_bytes_is_what_the_wal_takes_before_its_bound(wal_dir: Path) -> None:
    """room_bytes is max_bytes less what the segments hold; at 0 or below the WAL is over its limit."""
    record = on_disk_size(payload_for(1))
    wal = open_wal(wal_dir, max_bytes=3 * record)
    assert wal.room_bytes() == 3 * record
    wal.append(batch(1, 2))
    assert wal.room_bytes() == record
    assert not wal.over_limit()
    wal.append(batch(3, 2))
    assert wal.room_bytes() == -record
    assert wal.over_limit()
    wal.close()


def test_an_active_segment_holding_the_wal_over_its_bound_is_sealed_and_collected_once_passed(
    wal_dir: Path,
) -> None:
    """A WAL that is one active segment over max_bytes (one large batch) shrinks without any append:
    once every sink has passed all of it, collect seals it (appends go on in a new segment named by
    the next seq) and deletes it; before that it stays whole."""
    record = on_disk_size(payload_for(1))
    wal = open_wal(wal_dir, ("a", "b"), max_bytes=5 * record)
    wal.append(batch(1, 10))
    write_cursor(cursor_path(wal_dir, "a"), 10)
    write_cursor(cursor_path(wal_dir, "b"), 9)
    assert wal.collect() == 0
    assert wal.over_limit()
    assert [p.name for p in segment_files(wal_dir)] == [f"{1:020d}.wal"]
    write_cursor(cursor_path(wal_dir, "b"), 10)
    assert wal.collect() == 1
    assert wal.size_bytes() == 0
    assert not wal.over_limit()
    assert wal.append(batch(11, 1)) == 11
    assert [p.name for p in segment_files(wal_dir)] == [f"{11:020d}.wal"]
    wal.close()


def test_a_full_active_segment_every_sink_passed_is_sealed_and_collected(wal_dir: Path) -> None:
    """An active segment at segment_bytes (which the next append would roll) goes once every sink has
    passed it, even with the WAL under its bound; one below segment_bytes stays."""
    record = on_disk_size(payload_for(1))
    wal = open_wal(wal_dir, ("a",), segment_bytes=3 * record)
    wal.append(batch(1, 2))
    write_cursor(cursor_path(wal_dir, "a"), 2)
    assert wal.collect() == 0
    wal.append(batch(3, 1))
    write_cursor(cursor_path(wal_dir, "a"), 3)
    assert wal.collect() == 1
    assert [p.name for p in segment_files(wal_dir)] == [f"{4:020d}.wal"]
    wal.close()


@pytest.mark.parametrize(("policy", "expected"), [("always", 3), ("never", 0)])
def test_fsync_policy_always_syncs_each_append_and_never_none(
    wal_dir: Path, monkeypatch: pytest.MonkeyPatch, policy: str, expected: int
) -> None:
    """Policy "always" syncs after every append; "never" leaves it to the kernel."""
    wal = open_wal(wal_dir, fsync=policy)
    counting = CountingOs("fdatasync")
    monkeypatch.setattr("auditship.agents.wal.log.os", counting)
    for first in (1, 2, 3):
        wal.append(batch(first, 1))
    assert counting.calls["fdatasync"] == expected
    wal.close()


def test_fsync_policy_interval_syncs_once_the_interval_has_passed(
    wal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Policy "interval" syncs on the append or the sync_if_due() that finds fsync_interval_ms passed
    since the last sync, and not before; with nothing written there is nothing to sync."""
    clock = Clock()
    monkeypatch.setattr("auditship.agents.wal.log.time", clock)
    wal = open_wal(wal_dir, fsync="interval", fsync_interval_ms=200)
    counting = CountingOs("fdatasync")
    monkeypatch.setattr("auditship.agents.wal.log.os", counting)
    wal.append(batch(1, 1))
    clock.now += 0.1
    wal.sync_if_due()
    assert counting.calls["fdatasync"] == 0
    clock.now += 0.1
    wal.sync_if_due()
    assert counting.calls["fdatasync"] == 1
    clock.now += 0.5
    wal.sync_if_due()  # nothing appended since
    assert counting.calls["fdatasync"] == 1
    wal.append(batch(2, 1))
    assert counting.calls["fdatasync"] == 2
    wal.close()


def test_collect_deletes_only_segments_every_sink_has_passed(wal_dir: Path) -> None:
    """A segment goes once every configured sink committed its last seq; a sink without a cursor holds
    everything; the active segment stays while a sink has not passed all of it."""
    wal = open_wal(wal_dir, ("a", "b"), segment_bytes=3 * on_disk_size(payload_for(1)))
    for first in (1, 4, 7, 10):
        wal.append(batch(first, 3))
    write_cursor(cursor_path(wal_dir, "a"), 12)
    assert wal.collect() == 0
    write_cursor(cursor_path(wal_dir, "b"), 5)
    assert wal.collect() == 1
    assert segment_files(wal_dir)[0].name == f"{4:020d}.wal"
    write_cursor(cursor_path(wal_dir, "b"), 11)
    assert wal.collect() == 2
    assert [p.name for p in segment_files(wal_dir)] == [f"{10:020d}.wal"]
    assert [r.lsn for r in wal.records_after(9)] == [10, 11, 12]
    wal.close()


def test_collect_keeps_everything_for_a_damaged_cursor_and_says_so_once(
    wal_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A configured sink's unreadable cursor keeps every segment (the sink may need them) and is
    reported once, naming the file."""
    wal = open_wal(wal_dir, ("a",), segment_bytes=100)
    for first in (1, 4, 7):
        wal.append(batch(first, 3))
    cursor_path(wal_dir, "a").write_text("twelve\n")
    assert wal.collect() == 0
    assert wal.collect() == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert str(cursor_path(wal_dir, "a")) in errors[0]
    wal.close()


def test_restart_appends_in_a_new_segment(wal_dir: Path) -> None:
    """After a restart appends go to a new segment (readers may be positioned in the old one), and the
    seqs carry on."""
    wal = open_wal(wal_dir)
    wal.append(batch(1, 3))
    wal.close()
    old = segment_files(wal_dir)[0].read_bytes()
    wal = open_wal(wal_dir)
    assert wal.next_lsn == 4
    wal.append(batch(4, 1))
    assert [p.name for p in segment_files(wal_dir)] == [f"{1:020d}.wal", f"{4:020d}.wal"]
    assert segment_files(wal_dir)[0].read_bytes() == old
    wal.close()


def test_restart_takes_over_an_empty_newest_segment(wal_dir: Path) -> None:
    """Starts that append nothing do not leave one empty segment each."""
    for _ in range(3):
        open_wal(wal_dir).close()
    assert [p.name for p in segment_files(wal_dir)] == [f"{1:020d}.wal"]


def test_restart_never_reuses_a_seq_after_every_old_segment_is_collected(wal_dir: Path) -> None:
    """Once every sink passed everything and collection deleted all it could, a restart still goes on
    from the next seq: the newest segment is never deleted."""
    wal = open_wal(wal_dir, ("a",), segment_bytes=100)
    for first in (1, 4, 7):
        wal.append(batch(first, 3))
    write_cursor(cursor_path(wal_dir, "a"), 9)
    assert wal.collect() == 3  # 7-9 too, sealed: only the new, empty, segment 10 is left
    wal.close()
    assert [p.name for p in segment_files(wal_dir)] == [f"{10:020d}.wal"]
    wal = open_wal(wal_dir, ("a",))
    assert wal.append(batch(10, 1)) == 10
    wal.close()


def test_restart_with_segments_lost_goes_on_after_every_committed_seq(wal_dir: Path) -> None:
    """Even with every segment file gone, a seq some sink (configured or not) committed is not issued
    again."""
    wal_dir.mkdir(parents=True)
    (wal_dir / "cursors").mkdir()
    write_cursor(cursor_path(wal_dir, "old-sink"), 41)
    write_cursor(cursor_path(wal_dir, "a"), 7)
    wal = open_wal(wal_dir, ("a",))
    assert wal.next_lsn == 42
    wal.close()


def test_directories_and_files_are_owner_only(wal_dir: Path) -> None:
    """The WAL's directories are 0700 and its files 0600, whatever the umask."""
    previous = os.umask(0o022)
    try:
        wal = open_wal(wal_dir)
        wal.append(batch(1, 1))
        write_cursor(cursor_path(wal_dir, "file"), 1)
    finally:
        os.umask(previous)
    for directory in (wal_dir, wal_dir / "cursors", wal_dir / "quarantine"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in (*segment_files(wal_dir), cursor_path(wal_dir, "file"), wal_dir / "writer.lock"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    wal.close()


def test_a_second_writer_is_refused(wal_dir: Path) -> None:
    """Two writers would interleave records: the second gets a WalError while the first holds the log."""
    wal = open_wal(wal_dir)
    with pytest.raises(WalError, match="another process is writing"):
        open_wal(wal_dir)
    wal.close()
    open_wal(wal_dir).close()


def test_an_unusable_directory_is_a_wal_error(tmp_path: Path) -> None:
    """A WAL directory that cannot be created gives a WalError naming it."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(WalError, match=str(blocker)):
        open_wal(blocker / "wal")


class FullDisk:
    """Stands in for `os` in ondisk.files, where the WAL writes: the next write gets `written` bytes of its
    data onto the disk (a short write), then the disk is full; `meanwhile` runs between the two, as a
    reader in another process could."""

    def __init__(self, written: int, meanwhile: Callable[[], object] = lambda: None) -> None:
        self.written = written
        self.meanwhile = meanwhile
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        self.calls += 1
        if self.calls == 1 and self.written:
            return os.write(fd, bytes(data[: self.written]))
        self.meanwhile()
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("written", [0, 100])
def test_a_failed_append_leaves_no_partial_batch(
    wal_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, written: int
) -> None:
    """An append that fails raises OSError and leaves the segment as it was. If it wrote nothing its seqs
    are free for the retry; if part of it reached the file (readers may have seen records of it) its
    seqs are retired and the retry gets new ones."""
    wal = open_wal(wal_dir)
    wal.append(batch(1, 2))
    size = segment_files(wal_dir)[0].stat().st_size
    monkeypatch.setattr("auditship.ondisk.files.os", FullDisk(written))
    with pytest.raises(OSError, match="No space"):
        wal.append(batch(3, 5))
    monkeypatch.undo()
    assert segment_files(wal_dir)[0].stat().st_size == size
    retry = wal.append(batch(3, 5))
    expected_first = 3 if written == 0 else 8
    assert retry == expected_first + 4
    assert [r.lsn for r in wal.records_after(0)] == [1, 2, *range(expected_first, expected_first + 5)]
    assert ("retired" in caplog.text) == bool(written)
    wal.close()


def test_a_reader_that_read_part_of_a_failed_append_gets_every_record_of_the_retry(
    wal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader may read whole records of an append that then fails; the retry is written where no
    reader has been (a new segment), so the reader gets all of it: the failed batch's records it saw
    come again under new seqs (at least once), none is lost."""
    wal = open_wal(wal_dir)
    wal.append(batch(1, 2))
    reader = WalReader(wal_dir, "file")
    seen: list[WalRecord] = []
    written = 2 * on_disk_size(payload_for(3)) + 5
    monkeypatch.setattr(
        "auditship.ondisk.files.os", FullDisk(written, lambda: seen.extend(reader.read(100, 1 << 20)))
    )
    with pytest.raises(OSError, match="No space"):
        wal.append(batch(3, 5))
    monkeypatch.undo()
    assert [r.lsn for r in seen] == [1, 2, 3, 4]
    wal.append(batch(3, 5))
    seen.clear()
    for _ in range(5):
        seen.extend(reader.read(100, 1 << 20))
    assert seen == [WalRecord(8 + n, payload_for(3 + n)) for n in range(5)]
    assert segment_files(wal_dir)[-1].name == f"{8:020d}.wal"
    reader.close()
    wal.close()


def test_records_after_starts_after_the_given_seq_across_segments(wal_dir: Path) -> None:
    """records_after(n) yields every record above n, oldest first, whichever segment holds it."""
    wal = open_wal(wal_dir, segment_bytes=200)
    for first in range(1, 30, 3):
        wal.append(batch(first, 3))
    assert [r.lsn for r in wal.records_after(17)] == list(range(18, 31))
    assert list(wal.records_after(30)) == []
    wal.close()
