"""The agent's keyring: the field-encryption keys and the spool seal's key pair, in `keys_dir` (its files
are described in ondisk/keys.py, which also opens the field keys for readers). `rotate()` only moves
`active`.

Every agent process (intake, sinks) builds its own Keyring from the same directory, and on a fresh
install several start at once. So each file is written under a private temporary name and
hard-linked into place: `link()` fails when the name exists, so exactly one process's file wins and
nobody ever reads half a key; the losers drop theirs and read the winner's.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auditship.agents.durable import fsync_directory
from auditship.ondisk.errors import KeyringError
from auditship.ondisk.files import make_private_dirs, write_all
from auditship.ondisk.keys import ACTIVE, KEY_BYTES, SPOOL_KEY, FieldKeys, read_active, read_key

logger = logging.getLogger("auditship.crypto")


class Keyring(FieldKeys):
    """The field keys and the spool key pair. Build it with `load_or_create` (the agent) or `load`
    (readers, which must not create keys)."""

    def __init__(self, keys_dir: Path, active_key_id: str) -> None:
        super().__init__(keys_dir, active_key_id)
        self._spool_private: X25519PrivateKey | None = None

    @classmethod
    def load_or_create(cls, keys_dir: Path) -> Keyring:
        _make_private_dir(keys_dir)
        active = read_active(keys_dir) or _create_active(keys_dir)
        spool_key = keys_dir / SPOOL_KEY
        if not spool_key.exists():
            publish(spool_key, X25519PrivateKey.generate().private_bytes_raw())
        keyring = cls(keys_dir, active)
        # Fail at start-up, naming the file, rather than at the first sensitive event.
        keyring.cipher(active)
        keyring.spool_public_key()
        return keyring

    def rotate(self) -> str:
        """Create a field key and make it the active one; returns its id. Old keys stay."""
        key_id = _create_field_key(self.keys_dir)
        _replace(self.keys_dir / ACTIVE, key_id.encode() + b"\n")
        self._active = key_id
        logger.info("field key %s is now active; older keys stay for decryption", key_id)
        return key_id

    def spool_private_key(self) -> X25519PrivateKey:
        if self._spool_private is None:
            raw = read_key(self.keys_dir / SPOOL_KEY)
            self._spool_private = X25519PrivateKey.from_private_bytes(raw)
        return self._spool_private

    def spool_public_key(self) -> bytes:
        """The raw 32-byte X25519 public key emitters seal spool records to (shipper.spool_seal)."""
        return self.spool_private_key().public_key().public_bytes_raw()


def _create_active(keys_dir: Path) -> str:
    key_id = _create_field_key(keys_dir)
    if publish(keys_dir / ACTIVE, key_id.encode() + b"\n"):
        logger.info("created keyring in %s with field key %s", keys_dir, key_id)
        return key_id
    # Another process initialised the keyring at the same moment: its key is the one, ours never served.
    (keys_dir / f"{key_id}.key").unlink(missing_ok=True)
    winner = read_active(keys_dir)
    if winner is None:
        raise KeyringError(f"{keys_dir / ACTIVE}: vanished while the keyring was being created")
    return winner


def _create_field_key(keys_dir: Path) -> str:
    while True:
        key_id = f"f-{secrets.token_hex(4)}"
        if publish(keys_dir / f"{key_id}.key", os.urandom(KEY_BYTES)):
            return key_id


def _make_private_dir(path: Path) -> None:
    try:
        make_private_dirs(path, tighten=True)
    except OSError as exc:
        raise KeyringError(f"{path}: cannot create the key directory: {exc.strerror}") from exc


def _write_temp(directory: Path, name: str, data: bytes) -> Path:
    """Write `data` durably to a new private file in `directory`; the caller moves it into place."""
    temp = directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is filtered by the umask
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return temp


def publish(path: Path, data: bytes) -> bool:
    """Create `path` (0600) holding `data`, durably, unless it exists; True if this call created it."""
    try:
        temp = _write_temp(path.parent, path.name, data)
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        finally:
            temp.unlink()
        fsync_directory(path.parent)
    except OSError as exc:
        raise KeyringError(f"{path}: cannot create key file: {exc.strerror}") from exc
    return True


def _replace(path: Path, data: bytes) -> None:
    try:
        _write_temp(path.parent, path.name, data).replace(path)
        fsync_directory(path.parent)
    except OSError as exc:
        raise KeyringError(f"{path}: cannot write: {exc.strerror}") from exc
