"""A WAL record: the LSN the intake stamped and the frame it carries.

On disk a record is `shipper.records.encode_record(<u64 LSN, little-endian><frame bytes>)`: the shared
codec gives the length and checksum, the LSN prefix lets any record be placed without an index.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import msgspec

from shipper.records import HEADER, encode_record

LSN = struct.Struct("<Q")
RECORD_OVERHEAD = HEADER.size + LSN.size
"""What a record adds to its payload on disk."""


class WalRecord(msgspec.Struct, frozen=True):
    lsn: int
    payload: bytes
    """The frame bytes, without the LSN prefix."""


def encode_records(first_lsn: int, payloads: Sequence[bytes]) -> bytes:
    """The on-disk bytes of `payloads`, stamped with consecutive LSNs from `first_lsn`."""
    pack = LSN.pack
    return b"".join([encode_record(pack(lsn) + payload) for lsn, payload in enumerate(payloads, first_lsn)])
