"""A sink's reader: its own cursor over the WAL, in its own process, while the intake appends.

The writer only ever appends, and only to the newest segment, so every byte a reader sees below a file's
size is final. The one judgement a reader makes is whether the segment it is in is complete: only then
does a torn record at its end mean "lost" rather than "not written yet", and only then may the reader
move on. A segment is complete once a newer one exists, and that must be seen BEFORE the segment is read
to its end: seen after, the writer could have appended a last record and rolled in between, unseen.
"""

from __future__ import annotations

import logging
from pathlib import Path

from auditship.agents.wal.cursor import cursor_path, read_cursor, write_cursor
from auditship.agents.wal.record import WalRecord
from auditship.agents.wal.scanner import Damage, Gathered, ScanEnd, SegmentScanner
from auditship.agents.wal.segment import list_segments, segment_after
from auditship.ondisk.files import make_private_dirs

log = logging.getLogger("auditship.wal")


class WalReader:
    def __init__(self, directory: Path, sink: str) -> None:
        self._directory = directory
        self._sink = sink
        self._cursor = cursor_path(directory, sink)
        self._committed = read_cursor(self._cursor) or 0
        self._position = self._committed
        self._scanner: SegmentScanner | None = None
        self._final = False
        """The scanner's segment is complete (a newer one exists)."""
        self._committed_at: tuple[SegmentScanner, int, int] | None = None
        """Where the scanner was (offset, last LSN) when the committed LSN was the last one read."""
        self._reported: set[tuple[str, int, int]] = set()
        """Gaps, damage and torn tails already logged, each told once: (what, segment, where)."""

    @property
    def committed(self) -> int:
        return self._committed

    @property
    def position(self) -> int:
        return self._position

    def read(self, max_records: int, max_bytes: int) -> list[WalRecord]:
        """The next records after `position`: at most `max_records` and about `max_bytes` of payload,
        but at least one if any is there; [] when caught up. Never waits."""
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, got {max_records}")
        gathered = Gathered(max_records, max_bytes)
        while not gathered.full:
            scanner = self._scanner or self._locate()
            if scanner is None:
                break
            if not self._final:
                self._final = segment_after(self._directory, scanner.segment.first_lsn) is not None
            ended = scanner.read(gathered, self._position)
            if gathered.records:
                self._position = gathered.records[-1].lsn
            if ended is ScanEnd.FULL:
                break
            if ended is ScanEnd.DAMAGED:
                damage = scanner.skip_damage(self._final)
                self._report_damage(scanner, damage)
                if damage.resume is not None:
                    continue
            elif not self._final:
                break  # the segment being written: the rest is not there yet
            elif ended is ScanEnd.TORN:
                self._report_torn(scanner)
            if not self._advance(scanner):
                break
        return gathered.records

    def _locate(self) -> SegmentScanner | None:
        """Open the segment that holds the record after `position` (records up to it are passed)."""
        segments = list_segments(self._directory)
        if not segments:
            return None
        wanted = self._position + 1
        holding = [segment for segment in segments if segment.first_lsn <= wanted]
        segment = holding[-1] if holding else segments[0]
        if not holding and ("gap", segment.first_lsn, wanted) not in self._reported:
            self._reported.add(("gap", segment.first_lsn, wanted))
            log.error(
                "sink %s: WAL records %d-%d are gone (deleted while this sink was not configured, or lost); "
                "it goes on from seq %d, the oldest in the WAL",
                self._sink,
                wanted,
                segment.first_lsn - 1,
                segment.first_lsn,
            )
        try:
            self._scanner = SegmentScanner(segment)
        except FileNotFoundError:
            return None  # collected just now: the next read finds the one after it
        self._final = False
        return self._scanner

    def _advance(self, scanner: SegmentScanner) -> bool:
        """Move from a finished segment to the next one; False when there is none (yet)."""
        first_lsn = scanner.segment.first_lsn
        while (segment := segment_after(self._directory, first_lsn)) is not None:
            try:
                following = SegmentScanner(segment)
            except FileNotFoundError:
                first_lsn = segment.first_lsn  # an empty segment, collected just now
                continue
            scanner.close()
            self._scanner, self._final = following, False
            return True
        return False

    def _report_damage(self, scanner: SegmentScanner, damage: Damage) -> None:
        # Keyed by the last good LSN: a damaged span met again (after a rewind) or met piece by piece in
        # a growing file is one damage.
        key = ("damage", scanner.segment.first_lsn, damage.last_lsn)
        if key in self._reported:
            return
        self._reported.add(key)
        if damage.resume is None:
            skipped = "the rest of the segment: its records after that seq are lost"
        elif damage.next_lsn is None:
            skipped = f"to byte {damage.resume}, where the next record may yet be written"
        else:
            skipped = f"to seq {damage.next_lsn} at byte {damage.resume}"
        log.error(
            "sink %s: %s: damaged record at byte %d after seq %d; it skips %s",
            self._sink,
            scanner.segment.path,
            damage.start,
            damage.last_lsn,
            skipped,
        )

    def _report_torn(self, scanner: SegmentScanner) -> None:
        key = ("torn", scanner.segment.first_lsn, scanner.offset)
        if key not in self._reported:
            self._reported.add(key)
            log.warning(
                "sink %s: %s ends in a torn record at byte %d (its writer stopped mid-write); "
                "records after seq %d in it are lost",
                self._sink,
                scanner.segment.path,
                scanner.offset,
                scanner.last_lsn,
            )

    def commit(self, lsn: int) -> None:
        """Make `lsn` (read, and delivered by the sink) the durable start after a restart."""
        if not self._committed <= lsn <= self._position:
            raise ValueError(f"sink {self._sink}: commit({lsn}) outside {self._committed}..{self._position}")
        if lsn == self._committed:
            return
        make_private_dirs(self._cursor.parent)
        write_cursor(self._cursor, lsn)
        self._committed = lsn
        scanner = self._scanner
        if scanner is not None and lsn == self._position:
            self._committed_at = (scanner, scanner.offset, scanner.last_lsn)
        else:
            self._committed_at = None

    def rewind(self) -> None:
        """Read again from the committed LSN (the last batch was not delivered)."""
        if self._position == self._committed:
            return
        self._position = self._committed
        if self._committed_at is not None and self._committed_at[0] is self._scanner:
            _, offset, last_lsn = self._committed_at
            self._committed_at[0].seek(offset, last_lsn)
        elif self._scanner is not None:
            self._scanner.close()
            self._scanner = None

    def close(self) -> None:
        if self._scanner is not None:
            self._scanner.close()
            self._scanner = None
