"""The writer: the intake appends batches; the log stamps LSNs, rolls segments, syncs and collects.

LSNs are never issued twice, also across restarts, after every old segment is gone and after a lost
tail or cursor: every LSN issued is at or below the durable reservation (reservation.py), and a start
goes on above it, above the newest segment's name (that segment is never deleted) and above every LSN
some sink has committed.

The size bound: `room_bytes()` says how much more the WAL takes before it reaches `wal.max_bytes`; the
intake takes a frame only while it is positive, so the WAL passes the bound by less than one record.
`collect()` seals an active segment that stands in the way of shrinking (see there), so the WAL always
shrinks back under the bound once the sinks have caught up, with or without appends.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from auditship.agents.config import WalConfig
from auditship.agents.errors import WalError
from auditship.agents.wal.cursor import check_sink_name, committed_lsns, cursor_path, read_cursor
from auditship.agents.wal.record import WalRecord, encode_records
from auditship.agents.wal.recovery import recover
from auditship.agents.wal.reservation import RESERVE_LSNS, read_reservation, write_reservation
from auditship.agents.wal.scanner import Gathered, ScanEnd, SegmentScanner
from auditship.agents.wal.segment import (
    CURSORS,
    QUARANTINE,
    Segment,
    create_segment,
    list_segments,
    segment_path,
)
from auditship.ondisk.files import make_private_dirs, try_lock, write_all
from shipper.records import MAX_RECORD_BYTES

log = logging.getLogger("auditship.wal")
LOCK_NAME = "writer.lock"
SCAN_BATCH_RECORDS = 4096


class WriteAheadLog:
    def __init__(self, directory: Path, config: WalConfig, sinks: Sequence[str]) -> None:
        self._directory = directory
        self._config = config
        self._sinks = [check_sink_name(sink) for sink in sinks]
        self._durable = config.fsync != "never"
        self._damaged_cursors: set[str] = set()
        try:
            for path in (directory, directory / CURSORS, directory / QUARANTINE):
                make_private_dirs(path, tighten=True)
            self._lock = _lock_writer(directory)
            try:
                self._start()
            except BaseException:
                os.close(self._lock)
                raise
        except OSError as exc:
            raise WalError(f"write-ahead log {directory}: cannot start: {exc}") from exc
        log.info("WAL %s: %d segments, next seq %d", directory, len(self._closed) + 1, self._next_lsn)

    def _start(self) -> None:
        recovered = recover(self._directory)
        self._closed = recovered.segments
        self._closed_bytes = sum(size for _, size in self._closed)
        self._reserved = read_reservation(self._directory)
        issued = max([recovered.last_lsn, self._reserved, *committed_lsns(self._directory).values()])
        newest = self._closed[-1][0] if self._closed else None
        self._next_lsn = max(issued + 1, newest.first_lsn if newest else 1)
        if newest and newest.first_lsn == self._next_lsn and newest.first_lsn in recovered.damaged:
            # Emptied by recovery, but readers may wait at an offset inside its old damage: appending
            # into it from 0 would write under them. Its one LSN is retired instead.
            self._next_lsn += 1
        self._active, self._fd = self._open_active()
        self._active_size = 0
        self._roll_due = False
        self._dirty = False
        self._synced_at = time.monotonic()

    def _open_active(self) -> tuple[Segment, int]:
        """Appends start in a new segment: readers may be positioned in the old ones. An empty newest
        segment named by the next LSN (a start that appended nothing, a torn first record cut off) is
        taken over instead: a reader in it waits at its start."""
        if self._closed and self._closed[-1][0].first_lsn == self._next_lsn:
            segment, _ = self._closed.pop()
            return segment, os.open(segment.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        fd = create_segment(self._directory, self._next_lsn, self._durable)
        return Segment(self._next_lsn, segment_path(self._directory, self._next_lsn)), fd

    @property
    def next_lsn(self) -> int:
        return self._next_lsn

    def append(self, payloads: Sequence[bytes]) -> int:
        """Stamp `payloads` with the next LSNs and write them with one write(); returns the last LSN."""
        if self._fd < 0:
            raise WalError(f"write-ahead log {self._directory} is closed")
        if not payloads:
            return self._next_lsn - 1
        last = self._next_lsn + len(payloads) - 1
        if last > self._reserved:
            write_reservation(self._directory, last + RESERVE_LSNS)  # an OSError: nothing issued yet
            self._reserved = last + RESERVE_LSNS
        data = encode_records(self._next_lsn, payloads)
        if self._roll_due or (
            self._active_size and self._active_size + len(data) > self._config.segment_bytes
        ):
            self._roll()
        try:
            write_all(self._fd, data)
        except OSError as exc:
            self._undo_failed_write(len(payloads), exc)
            raise
        self._active_size += len(data)
        self._next_lsn += len(payloads)
        self._dirty = True
        if self._config.fsync == "always":
            self.sync()
        else:
            self.sync_if_due()
        return self._next_lsn - 1

    def _roll(self) -> None:
        if self._durable:
            os.fdatasync(self._fd)  # the old segment is whole on disk before a newer one says it is final
        fd = create_segment(self._directory, self._next_lsn, self._durable)
        os.close(self._fd)
        self._closed.append((self._active, self._active_size))
        self._closed_bytes += self._active_size
        self._active = Segment(self._next_lsn, segment_path(self._directory, self._next_lsn))
        self._fd, self._active_size, self._roll_due = fd, 0, False
        self._dirty, self._synced_at = False, time.monotonic()

    def _undo_failed_write(self, count: int, error: OSError) -> None:
        """A write that failed having written nothing leaves the log as it was. One that wrote part of
        the batch may have shown whole records of it to readers, who are then past where the batch
        began: its LSNs are retired (the caller's retry gets new ones), the partial batch is cut off,
        and the next append starts a new segment so that nothing is ever written under a reader."""
        written = os.fstat(self._fd).st_size - self._active_size
        if written <= 0:
            return
        first = self._next_lsn
        self._next_lsn += count
        self._roll_due = True
        try:
            os.ftruncate(self._fd, self._active_size)
        except OSError as exc:
            # The torn batch stays at the end of this segment; readers skip it once a newer one exists.
            log.error("%s: cannot cut off the failed append: %s", self._active.path, exc)
            self._active_size += written
        log.error(
            "%s: append of seqs %d-%d failed after %d of its bytes (%s); those seqs are retired and the "
            "next append starts a new segment",
            self._active.path,
            first,
            self._next_lsn - 1,
            written,
            error,
        )

    @property
    def unsynced(self) -> bool:
        """Whether appends wait for an fsync (under `fsync = "interval"`, at the next sync_if_due)."""
        return self._dirty

    def sync_if_due(self) -> None:
        if (
            self._config.fsync == "interval"
            and self._dirty
            and time.monotonic() - self._synced_at >= self._config.fsync_interval_ms / 1000
        ):
            self.sync()

    def sync(self) -> None:
        if self._dirty and self._fd >= 0:
            os.fdatasync(self._fd)
            self._dirty, self._synced_at = False, time.monotonic()

    def size_bytes(self) -> int:
        return self._closed_bytes + self._active_size

    def room_bytes(self) -> int:
        """How many more bytes of records the WAL takes before it reaches wal.max_bytes (0 or less:
        none); a record is its payload and RECORD_OVERHEAD."""
        return self._config.max_bytes - self.size_bytes()

    def over_limit(self) -> bool:
        return self.room_bytes() <= 0

    def collect(self) -> int:
        """Delete the oldest segments every configured sink has committed past; returns how many.

        The active segment is sealed first (a new one started, as an append would) once every sink has
        passed all of it and it has reached segment_bytes or holds the WAL at its bound: while the
        intake is paused no append comes to roll it, and a WAL that is one large active segment would
        never shrink."""
        floor = self._committed_floor()
        if (
            self._active_size
            and self._fd >= 0
            and floor >= self._next_lsn - 1
            and (self._active_size >= self._config.segment_bytes or self.over_limit())
        ):
            try:
                self._roll()
            except OSError as exc:
                log.error("%s: cannot seal (%s); it stays until the next collection", self._active.path, exc)
        deleted = 0
        while self._closed:
            segment, size = self._closed[0]
            following = self._closed[1][0] if len(self._closed) > 1 else self._active
            if following.first_lsn - 1 > floor:  # the segment may hold an LSN up to just before the next
                break
            try:
                segment.path.unlink(missing_ok=True)
            except OSError as exc:
                log.error("%s: cannot delete (%s); it stays until the next collection", segment.path, exc)
                break
            self._closed.pop(0)
            self._closed_bytes -= size
            deleted += 1
        return deleted

    def _committed_floor(self) -> int:
        """The LSN every configured sink has committed; a sink that never committed holds everything."""
        floor = self._next_lsn - 1
        for sink in self._sinks:
            try:
                lsn = read_cursor(cursor_path(self._directory, sink)) or 0
            except WalError as exc:
                # The sink worker refuses to start on it; the log keeps what the sink may still need.
                if sink not in self._damaged_cursors:
                    log.error("%s; the WAL keeps every segment until it is fixed", exc)
                self._damaged_cursors.add(sink)
                lsn = 0
            else:
                self._damaged_cursors.discard(sink)
            floor = min(floor, lsn)
        return floor

    def records_after(self, lsn: int) -> Iterator[WalRecord]:
        """Every record with an LSN above `lsn`, oldest first."""
        segments = list_segments(self._directory)
        first = max((i for i, segment in enumerate(segments) if segment.first_lsn <= lsn + 1), default=0)
        for segment in segments[first:]:
            yield from _records_of(segment, lsn)

    def close(self) -> None:
        if self._fd < 0:
            return
        self.sync()
        if self._reserved != self._next_lsn - 1:
            # Gives the unused reservation back, so a restart goes on from the next LSN.
            try:
                write_reservation(self._directory, self._next_lsn - 1)
            except OSError as exc:
                log.warning(
                    "%s: cannot write the last seq (%s); a restart skips the unused ones",
                    self._directory,
                    exc,
                )
        os.close(self._fd)
        os.close(self._lock)
        self._fd = -1


def _records_of(segment: Segment, after: int) -> Iterator[WalRecord]:
    scanner = SegmentScanner(segment)
    try:
        while True:
            gathered = Gathered(SCAN_BATCH_RECORDS, MAX_RECORD_BYTES)
            ended = scanner.read(gathered, after)
            yield from gathered.records
            if ended is ScanEnd.DAMAGED:
                # Recovery rebuilt what was damaged at start; this is damage since, skipped as readers do.
                damage = scanner.skip_damage(final=True)
                log.error(
                    "%s: damaged record at byte %d after seq %d, skipped to byte %s",
                    segment.path,
                    damage.start,
                    damage.last_lsn,
                    damage.resume,
                )
                if damage.resume is None:
                    return
            elif ended is not ScanEnd.FULL:
                return
    finally:
        scanner.close()


def _lock_writer(directory: Path) -> int:
    """One writer per WAL: a second one would interleave its records with the first one's."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    if not try_lock(fd):
        os.close(fd)
        raise WalError(f"{directory}: another process is writing this WAL (it holds {LOCK_NAME})")
    return fd
