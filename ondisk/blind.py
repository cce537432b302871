"""Blind indexes: a keyed hash of a sensitive value, so that the events of one card or patient id are
found without decrypting anything and without making the values guessable from the data.

    <keys_dir>/blind-hmac.key    0600, 32 random bytes: the HMAC-SHA256 key of every blind index

A value's index is the first 16 bytes, in hex, of HMAC-SHA256(key, field name + "\\0" + normalised value):
the field name is in it, so one value under two fields (an ssn and a patient id) gives two unrelated
indexes. Normalised: a string in Unicode NFKC, without surrounding whitespace, case-folded; any other
value as its JSON text (so the int 123456789 and the string "123456789" match). The agent writes the index
into the value's envelope (ondisk/envelope.py) for the fields `[encryption] blind_index` names;
`audit-query search --sensitive` computes it from keys_dir and looks for it.

Without the key, an index says only that two events hold the same value of one field; with the key
(in keys_dir, never in the data directory) anyone can test a guess, which is what searching is. The key
is not rotated: a new one would make every earlier index unsearchable.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from pathlib import Path

import msgspec

from auditship.ondisk.errors import KeyringError
from auditship.ondisk.keys import read_key

BLIND_KEY = "blind-hmac.key"
BLIND_HEX = 32

_json = msgspec.json.Encoder(order="deterministic")


def normalised(value: object) -> bytes:
    if isinstance(value, str):
        return unicodedata.normalize("NFKC", value).strip().casefold().encode()
    return _json.encode(value)


class BlindIndex:
    """The HMAC key of blind indexes, and indexing a field's value with it."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def load(cls, keys_dir: Path) -> BlindIndex:
        """The key in `keys_dir`; KeyringError naming the file when there is none (the agent makes it at
        its first start with `[encryption] blind_index` set)."""
        path = keys_dir / BLIND_KEY
        if not path.exists():
            raise KeyringError(
                f"{path}: no blind index key here (the agent makes it when [encryption] blind_index names "
                "a field)"
            )
        return cls(read_key(path))

    def token(self, name: str, value: object) -> str:
        """The blind index of `value` in field `name`: BLIND_HEX hex digits."""
        mac = hmac.new(self._key, name.encode() + b"\0" + normalised(value), hashlib.sha256)
        return mac.hexdigest()[:BLIND_HEX]
