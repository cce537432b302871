"""The seq reservation: seqs are never issued twice, whatever happens to the WAL's tail or the cursors."""

from __future__ import annotations

import logging
import multiprocessing
import os
from pathlib import Path

import pytest

from auditship.agents.wal.cursor import cursor_path, write_cursor
from auditship.agents.wal.reservation import RESERVATION, RESERVE_LSNS, read_reservation
from tests.agents.wal.sample import open_wal, payload_for, segment_files


def append_and_die(directory: str, count: int) -> None:
    """The child: append `count` records and exit without closing the WAL, as a kill -9 would."""
    wal = open_wal(Path(directory))
    for number in range(1, count + 1):
        wal.append([payload_for(number)])
    os._exit(0)


def lose_tail_and_cursors(wal_dir: Path) -> None:
    """What item 5 of issue 10 did by hand: the newest segment gone, and every cursor."""
    segment_files(wal_dir)[-1].unlink()
    for cursor in (wal_dir / "cursors").iterdir():
        cursor.unlink()


def test_seqs_are_reserved_ahead_with_one_durable_write_per_range(
    wal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before it issues a seq the writer has a reservation at or above it on disk, renewed once per
    RESERVE_LSNS seqs rather than at every append."""
    writes: list[int] = []
    wal = open_wal(wal_dir)
    monkeypatch.setattr("auditship.agents.wal.log.write_reservation", lambda _, seq: writes.append(seq))
    for number in range(1, 1001):
        wal.append([payload_for(number)])
    assert writes == [1 + RESERVE_LSNS]
    wal.close()


def test_after_a_crash_the_seqs_go_on_above_the_reservation_though_tail_and_cursors_are_lost(
    wal_dir: Path,
) -> None:
    """A writer dies without closing after appending seqs 2-11; their segment and the sink's cursor are
    then lost. The restarted writer issues none of them again: it goes on above its reservation."""
    wal = open_wal(wal_dir)
    wal.append([payload_for(0)])
    wal.close()
    write_cursor(cursor_path(wal_dir, "file"), 1)
    child = multiprocessing.get_context("spawn").Process(target=append_and_die, args=(str(wal_dir), 10))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    lose_tail_and_cursors(wal_dir)
    wal = open_wal(wal_dir)
    assert wal.next_lsn == read_reservation(wal_dir) + 1 > 11
    wal.close()


def test_a_clean_close_gives_back_the_unused_reservation(wal_dir: Path) -> None:
    """After a clean close the reservation is the last seq issued: a restart skips no seq, and one after
    the WAL's tail and the cursors are lost still issues none again."""
    wal = open_wal(wal_dir, segment_bytes=100)
    for number in range(1, 8):
        wal.append([payload_for(number), payload_for(number)])
    write_cursor(cursor_path(wal_dir, "file"), 14)
    wal.close()
    assert read_reservation(wal_dir) == 14
    lose_tail_and_cursors(wal_dir)
    wal = open_wal(wal_dir)
    assert wal.next_lsn == 15
    assert wal.append([payload_for(15)]) == 15
    wal.close()


def test_a_damaged_reservation_is_reported_and_the_start_goes_on_after_the_segments(
    wal_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unreadable reservation does not stop the start: it is reported, naming the file, the writer
    goes on after the newest seq in the segments, and the next append writes a good one."""
    wal = open_wal(wal_dir)
    wal.append([payload_for(1), payload_for(2)])
    wal.close()
    (wal_dir / RESERVATION).write_text("two\n")
    wal = open_wal(wal_dir)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert str(wal_dir / RESERVATION) in errors[0]
    assert wal.append([payload_for(3)]) == 3
    assert read_reservation(wal_dir) >= 3
    wal.close()
