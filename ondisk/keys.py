"""The keyring's files, in the agent's keys_dir (apart from the data directory; an older agent kept them
in its data directory's keys/), and the field keys as every reader opens them.

    <keys_dir>/           0700
      f-1a2b3c4d.key      0600, 32 random bytes: one AES-256 field key, named by its id
      f-1a2b3c4d.uses     how many values that key sealed (agents/crypto/key_uses.py)
      active              the id of the field key new envelopes use
      spool-x25519.key    0600, 32 bytes: the X25519 private key emitters seal spool records to
      subjects/           per-subject keys, for erasure by crypto-shredding (ondisk/subject_keys.py)

Old field keys are never deleted by the agent: an envelope names its key id, so every key that ever
was active stays loadable for decryption. The agent creates and rotates the keys
(agents/crypto/keyring.py); `audit-query cat --decrypt` opens them with `FieldKeys.load`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Self

from auditship.ondisk.errors import KeyringError
from auditship.ondisk.secret_files import read_secret
from auditship.ondisk.subject_keys import SUBJECT_KEY_ID, SubjectCiphers

if TYPE_CHECKING:  # cryptography is imported where a cipher is made: ondisk stays light at import
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
KEY_ID = re.compile(r"f-[0-9a-f]{8}")
ACTIVE = "active"
SPOOL_KEY = "spool-x25519.key"


class FieldKeys:
    """Field keys by id, loaded on first use, so a key another process rotated in is found."""

    def __init__(self, keys_dir: Path, active_key_id: str) -> None:
        self.keys_dir = keys_dir
        self._active = active_key_id
        self._ciphers: dict[str, AESGCM] = {}
        self.subjects = SubjectCiphers(keys_dir)
        """The per-subject keys (`ds-` ids) under keys_dir/subjects."""

    @classmethod
    def load(cls, keys_dir: Path) -> Self:
        """Open an existing keyring without creating anything (for decryption only)."""
        if not keys_dir.is_dir():
            raise KeyringError(f"{keys_dir}: no keyring here (the agent creates it on first start)")
        active = read_active(keys_dir)
        if active is None:
            raise KeyringError(f"{keys_dir / ACTIVE}: missing; not a complete keyring")
        return cls(keys_dir, active)

    @property
    def active_key_id(self) -> str:
        return self._active

    def cipher(self, key_id: str) -> AESGCM:
        """The AES-256-GCM cipher of field key `key_id`; KeyringError if there is no such key
        (SubjectErasedError for a subject key destroyed on purpose)."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if SUBJECT_KEY_ID.fullmatch(key_id):
            return self.subjects.cipher(key_id)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            # The id comes from envelopes, i.e. from data: never let it name a path outside keys/.
            if not KEY_ID.fullmatch(key_id):
                raise KeyringError(f"{self.keys_dir}: {key_id!r} is not a field key id")
            cipher = self._ciphers[key_id] = AESGCM(read_key(self.keys_dir / f"{key_id}.key"))
        return cipher

    def key_ids(self) -> list[str]:
        """Every field key id present in keys/, oldest file first."""
        paths = [p for p in self.keys_dir.glob("f-*.key") if KEY_ID.fullmatch(p.stem)]
        return [p.stem for p in sorted(paths, key=lambda p: p.stat().st_mtime_ns)]


def read_active(keys_dir: Path) -> str | None:
    """The active field key's id; None when keys/ has no `active` file yet."""
    path = keys_dir / ACTIVE
    try:
        key_id = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyringError(f"{path}: cannot read the active key id: {exc}") from exc
    if not KEY_ID.fullmatch(key_id):
        raise KeyringError(f"{path}: expected a key id like f-1a2b3c4d, found {key_id[:40]!r}")
    return key_id


def read_key(path: Path) -> bytes:
    """The KEY_BYTES of a key file, opened without following a link."""
    return read_secret(path, KEY_BYTES)
