"""A WAL record: the seq the intake stamped and the frame it carries.

On disk a record is `shipper.records.encode_record(<u64 seq, little-endian><frame bytes>)`: the shared
codec gives the length and checksum, the seq prefix lets any record be placed without an index.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import msgspec

from shipper.records import HEADER, encode_record

SEQ = struct.Struct("<Q")
RECORD_OVERHEAD = HEADER.size + SEQ.size
"""What a record adds to its payload on disk."""


class WalRecord(msgspec.Struct, frozen=True):
    seq: int
    payload: bytes
    """The frame bytes, without the seq prefix."""


def encode_batch(first_seq: int, payloads: Sequence[bytes]) -> bytes:
    """The on-disk bytes of `payloads`, stamped with consecutive seqs from `first_seq`."""
    pack = SEQ.pack
    return b"".join([encode_record(pack(seq) + payload) for seq, payload in enumerate(payloads, first_seq)])
