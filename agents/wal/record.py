"""A WAL record: the LSN the intake stamped and the frame it carries.

On disk a record is `shipper.records.encode_record(<u64 LSN, little-endian><frame bytes>)`: the shared
codec gives the length and checksum, the LSN prefix lets any record be placed without an index.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import msgspec

from shipper.records import HEADER

LSN = struct.Struct("<Q")
RECORD_OVERHEAD = HEADER.size + LSN.size
"""What a record adds to its payload on disk."""


class WalRecord(msgspec.Struct, frozen=True):
    lsn: int
    payload: bytes
    """The frame bytes, without the LSN prefix."""


def encode_records(first_lsn: int, payloads: Sequence[bytes]) -> bytes:
    """The on-disk bytes of `payloads`, stamped with consecutive LSNs from `first_lsn`: what
    encode_record makes of each LSN and payload, with each payload copied once, into the result (its
    checksum runs on from the LSN's)."""
    pack, header, crc32 = LSN.pack, HEADER.pack, zlib.crc32
    parts: list[bytes] = []
    for lsn, payload in enumerate(payloads, first_lsn):
        prefix = pack(lsn)
        parts += (header(LSN.size + len(payload), crc32(payload, crc32(prefix))), prefix, payload)
    return b"".join(parts)
