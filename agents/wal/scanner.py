"""Reading one segment file: records in large chunks, and a way past damage.

The scanner reports why it stopped and leaves the decision to its caller, which knows what it cannot:
whether the file may still grow (a torn tail is then "not yet"), and whom to tell about damage.
"""

from __future__ import annotations

import enum
import os
import re
from typing import NamedTuple
from zlib import crc32

from auditship.agents.wal.record import LSN, WalRecord
from auditship.agents.wal.segment import Segment
from shipper.records import HEADER, MAX_RECORD_BYTES, Tail, classify_tail, scan_records

CHUNK_BYTES = 1024 * 1024
_SMALLEST = HEADER.size + LSN.size  # a record with an empty frame
_INCOMPLETE = 0  # never an LSN: LSNs start at 1
_RETIRED_LSNS_SLACK = 1 << 20
# Offsets where a little-endian u32 may be a record's length: from SEQ.size up to a top byte of
# MAX_RECORD_BYTES' (the exact bound is checked after). Lookahead, so overlapping offsets all match.
_PLAUSIBLE_LENGTH = re.compile(
    b"(?=...[\\x01-\\x%02x]|..[^\\x00]\\x00|.[^\\x00]\\x00\\x00|[\\x%02x-\\xff]\\x00\\x00\\x00)"
    % (MAX_RECORD_BYTES >> 24, LSN.size),
    re.DOTALL,
)
# An LSN no record reaches: parsing with `after` set to it checks every record and keeps none.
_BEYOND_ANY_LSN = 1 << 64


class ScanEnd(enum.Enum):
    """Why a read of a segment stopped."""

    FULL = "full"  # the records gathered reached a limit
    END = "end"  # every byte in the file (so far) was read
    TORN = "torn"  # the file (so far) ends inside a record
    DAMAGED = "damaged"  # a record that cannot be valid: bad length or checksum, no LSN, LSN out of order


_END_AT_TAIL = {Tail.CLEAN: ScanEnd.END, Tail.TORN: ScanEnd.TORN, Tail.CORRUPT: ScanEnd.DAMAGED}


class Gathered:
    """Records gathered by one read, within a count and a byte budget (the first record always fits)."""

    def __init__(self, max_records: int, max_bytes: int) -> None:
        self.records: list[WalRecord] = []
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.nbytes = 0

    @property
    def full(self) -> bool:
        return len(self.records) >= self.max_records


class Damage(NamedTuple):
    """A damaged span of a segment: from `start` to `resume` (None: to the end of the file)."""

    start: int
    resume: int | None
    last_lsn: int
    """The LSN of the last good record before the damage."""
    next_lsn: int | None
    """The LSN of the record at `resume`, when one is known to be there."""


class SegmentScanner:
    """Reads a segment from `offset` on, through a window of the file read in large chunks."""

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.fd = os.open(segment.path, os.O_RDONLY | os.O_CLOEXEC)
        self.offset = 0
        """The first byte not yet parsed (always the start of a record, or of damage)."""
        self.last_lsn = segment.first_lsn - 1
        """The LSN of the last record parsed; every later record must have a larger one."""
        self._window = b""
        self._window_at = 0

    def seek(self, offset: int, last_lsn: int) -> None:
        self.offset, self.last_lsn = offset, last_lsn
        self._window, self._window_at = b"", offset

    def read(self, gathered: Gathered, after: int) -> ScanEnd:
        """Add the records with an LSN above `after` to `gathered` (older ones are parsed and passed)."""
        while True:
            ended = self._parse(gathered, after)
            if ended is ScanEnd.FULL or ended is ScanEnd.DAMAGED or not self._refill():
                return ended

    def skim(self) -> ScanEnd:
        """Parse to where the records end without keeping them (the writer's recovery needs no more)."""
        return self.read(Gathered(1, 0), _BEYOND_ANY_LSN)

    def _parse(self, gathered: Gathered, after: int) -> ScanEnd:
        # The hot loop of every reader: locals only, one Struct per record kept, and a record's bytes
        # copied once, only when it is kept. So shipper.records.scan_records' checks are made here rather
        # than through it: its generator and its copy of every payload made half the cost of reading.
        window, base = self._window, self._window_at
        view = memoryview(window)
        records = gathered.records
        room = gathered.max_records - len(records)
        budget = gathered.max_bytes - gathered.nbytes
        last_lsn, at, size = self.last_lsn, self.offset - base, len(window)
        header, unpack_header = HEADER.size, HEADER.unpack_from
        prefix, unpack_lsn = LSN.size, LSN.unpack_from
        ended: ScanEnd | None = None
        while at + header <= size:
            length, crc = unpack_header(window, at)
            start = at + header
            end = start + length
            if length > MAX_RECORD_BYTES or end > size or crc32(view[start:end]) != crc:
                break  # classify_tail tells a torn record from a damaged one
            if length < prefix:
                ended = ScanEnd.DAMAGED
                break
            (lsn,) = unpack_lsn(window, start)
            if lsn <= last_lsn:
                ended = ScanEnd.DAMAGED
                break
            if lsn > after:
                payload = length - prefix
                if room == 0 or (payload > budget and records):
                    ended = ScanEnd.FULL
                    break
                records.append(WalRecord(lsn, window[start + prefix : end]))
                room -= 1
                budget -= payload
            last_lsn, at = lsn, end
        self.last_lsn, self.offset = last_lsn, base + at
        gathered.nbytes = gathered.max_bytes - budget
        return ended or _END_AT_TAIL[classify_tail(window, at)]

    def _refill(self) -> bool:
        """Read the file afresh from `offset`; False when it holds nothing the window did not.

        Always a fresh read, never the rest of an old window: a caller that has just learnt the file is
        complete must judge its end by bytes read after it learnt so.
        """
        held = self._window_at + len(self._window) - self.offset
        size = CHUNK_BYTES
        if held >= HEADER.size:  # a record larger than a chunk is read whole
            length, _ = HEADER.unpack_from(self._window, self.offset - self._window_at)
            size = max(size, HEADER.size + length)
        self._window, self._window_at = os.pread(self.fd, size, self.offset), self.offset
        return len(self._window) > held

    def skip_damage(self, final: bool) -> Damage:
        """From a damaged record at `offset`, move to the next offset holding a valid record whose LSN
        follows `last_lsn`. In a file still being written (`final` False), when no such record is there
        yet, stop at the first offset where one may still be completing: the next read decides (a whole
        record found further on proves that offset was garbage, since the writer only appends).

        Cheap on any garbage: the regex engine finds the few offsets whose length could be a record's,
        and a candidate's LSN is checked before anything more of it is read."""
        start = self.offset
        at, pending = start + 1, None
        while True:
            data = os.pread(self.fd, CHUNK_BYTES, at)
            judged = max(0, len(data) - _SMALLEST + 1)  # offsets with a whole header and LSN in `data`
            for match in _PLAUSIBLE_LENGTH.finditer(data):
                if match.start() >= judged:
                    break  # judged from the next chunk on
                lsn = self._judge(data, match.start(), at + match.start(), start)
                if lsn:
                    return self._resume(start, at + match.start(), lsn)
                if lsn == _INCOMPLETE and pending is None:
                    pending = at + match.start()
            if len(data) < CHUNK_BYTES:
                if final:
                    return Damage(start, None, self.last_lsn, None)
                # Past `at + judged` too few bytes remain to judge: a record may be starting there.
                return self._resume(start, at + judged if pending is None else pending, None)
            at += judged

    def _judge(self, data: bytes, index: int, offset: int, start: int) -> int | None:
        """The LSN of the valid record at `index` of `data` (file `offset`), if that is one; _INCOMPLETE
        when one may still be being written there; None when it is not a record that can follow."""
        length, _ = HEADER.unpack_from(data, index)
        (lsn,) = LSN.unpack_from(data, index + HEADER.size)
        # An LSN no further ahead than the skipped bytes could have held (plus LSNs retired by failed
        # appends): noise passes this with a chance of about 2**-40, so it is rarely read any further.
        furthest = self.last_lsn + 1 + (offset - start) // _SMALLEST + _RETIRED_LSNS_SLACK
        if length > MAX_RECORD_BYTES or not self.last_lsn < lsn <= furthest:
            return None
        size = HEADER.size + length
        record = data[index : index + size]
        if len(record) < size:
            record = os.pread(self.fd, size, offset)
            if len(record) < size:
                return _INCOMPLETE
        return lsn if next(scan_records(record), None) is not None else None

    def _resume(self, start: int, offset: int, next_lsn: int | None) -> Damage:
        self.seek(offset, self.last_lsn)
        return Damage(start, offset, self.last_lsn, next_lsn)

    def close(self) -> None:
        os.close(self.fd)
