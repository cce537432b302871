"""Length-prefixed, checksummed records: the on-disk format of WAL segments and spool files.

Each record is `<u32 length><u32 crc32(payload)><payload>`, little-endian. A reader stops at the
first record that is incomplete (a torn tail: the writer died mid-write, or is still writing) or
whose checksum does not match (corruption), and says which of the two it met.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Iterator

HEADER = struct.Struct("<II")
MAX_RECORD_BYTES = 64 * 1024 * 1024


class Tail(enum.Enum):
    """How a scan of a buffer ended."""

    CLEAN = "clean"  # every byte belonged to a complete, valid record
    TORN = "torn"  # the last record is incomplete
    CORRUPT = "corrupt"  # a record's header or checksum is wrong


def encode_record(payload: bytes) -> bytes:
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def scan_records(buffer: bytes | memoryview, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """Yield `(end_offset, payload)` per valid record from `start`; `classify_tail` says why it stopped."""
    view = memoryview(buffer)
    offset = start
    size = len(view)
    while offset + HEADER.size <= size:
        length, crc = HEADER.unpack_from(view, offset)
        end = offset + HEADER.size + length
        if length > MAX_RECORD_BYTES or end > size:
            return
        payload = bytes(view[offset + HEADER.size : end])
        if zlib.crc32(payload) != crc:
            return
        offset = end
        yield end, payload


def classify_tail(buffer: bytes | memoryview, offset: int) -> Tail:
    """What lies at `offset`, where `scan_records` stopped: nothing, a torn record or corruption."""
    view = memoryview(buffer)
    remaining = len(view) - offset
    if remaining == 0:
        return Tail.CLEAN
    if remaining < HEADER.size:
        return Tail.TORN
    length, _ = HEADER.unpack_from(view, offset)
    if length > MAX_RECORD_BYTES:
        return Tail.CORRUPT
    if offset + HEADER.size + length > len(view):
        return Tail.TORN
    return Tail.CORRUPT
