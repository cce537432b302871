"""The agent's keyring: the field-encryption keys and the spool seal's key pair, in `keys/`.

    keys/                 0700
      f-1a2b3c4d.key      0600, 32 random bytes: one AES-256 field key, named by its id
      active              the id of the field key new envelopes use
      spool-x25519.key    0600, 32 bytes: the X25519 private key emitters seal spool records to

Old field keys are never deleted by the agent: an envelope names its key id, so every key that ever
was active stays loadable for decryption. `rotate()` only moves `active`.

Every agent process (intake, sinks, audit-query) builds its own Keyring from the same directory, and on
a fresh install several start at once. So each file is written under a private temporary name and
hard-linked into place: `link()` fails when the name exists, so exactly one process's file wins and
nobody ever reads half a key; the losers drop theirs and read the winner's.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from auditship.agents.crypto.errors import KeyringError
from auditship.agents.durable import fsync_directory
from auditship.ondisk.files import make_private_dirs, write_all

logger = logging.getLogger("auditship.crypto")

KEY_BYTES = 32
KEY_ID = re.compile(r"f-[0-9a-f]{8}")
_ACTIVE = "active"
_SPOOL_KEY = "spool-x25519.key"


class Keyring:
    """Field keys by id (loaded on first use, so a key another process rotated in is found) and the
    spool key pair. Build it with `load_or_create` (the agent) or `load` (readers, which must not
    create keys)."""

    def __init__(self, keys_dir: Path, active_key_id: str) -> None:
        self.keys_dir = keys_dir
        self._active = active_key_id
        self._ciphers: dict[str, AESGCM] = {}
        self._spool_private: X25519PrivateKey | None = None

    @classmethod
    def load_or_create(cls, keys_dir: Path) -> Keyring:
        _make_private_dir(keys_dir)
        active = _read_active(keys_dir) or _create_active(keys_dir)
        spool_key = keys_dir / _SPOOL_KEY
        if not spool_key.exists():
            _publish(spool_key, X25519PrivateKey.generate().private_bytes_raw())
        keyring = cls(keys_dir, active)
        # Fail at start-up, naming the file, rather than at the first sensitive event.
        keyring.cipher(active)
        keyring.spool_public_key()
        return keyring

    @classmethod
    def load(cls, keys_dir: Path) -> Keyring:
        """Open an existing keyring without creating anything (for decryption only)."""
        if not keys_dir.is_dir():
            raise KeyringError(f"{keys_dir}: no keyring here (the agent creates it on first start)")
        active = _read_active(keys_dir)
        if active is None:
            raise KeyringError(f"{keys_dir / _ACTIVE}: missing; not a complete keyring")
        return cls(keys_dir, active)

    @property
    def active_key_id(self) -> str:
        return self._active

    def cipher(self, key_id: str) -> AESGCM:
        """The AES-256-GCM cipher of field key `key_id`; KeyringError if there is no such key."""
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            # The id comes from envelopes, i.e. from data: never let it name a path outside keys/.
            if not KEY_ID.fullmatch(key_id):
                raise KeyringError(f"{self.keys_dir}: {key_id!r} is not a field key id")
            cipher = self._ciphers[key_id] = AESGCM(_read_key(self.keys_dir / f"{key_id}.key"))
        return cipher

    def key_ids(self) -> list[str]:
        """Every field key id present in keys/, oldest file first."""
        paths = [p for p in self.keys_dir.glob("f-*.key") if KEY_ID.fullmatch(p.stem)]
        return [p.stem for p in sorted(paths, key=lambda p: p.stat().st_mtime_ns)]

    def rotate(self) -> str:
        """Create a field key and make it the active one; returns its id. Old keys stay."""
        key_id = _create_field_key(self.keys_dir)
        _replace(self.keys_dir / _ACTIVE, key_id.encode() + b"\n")
        self._active = key_id
        logger.info("field key %s is now active; older keys stay for decryption", key_id)
        return key_id

    def spool_private_key(self) -> X25519PrivateKey:
        if self._spool_private is None:
            raw = _read_key(self.keys_dir / _SPOOL_KEY)
            self._spool_private = X25519PrivateKey.from_private_bytes(raw)
        return self._spool_private

    def spool_public_key(self) -> bytes:
        """The raw 32-byte X25519 public key emitters seal spool records to (shipper.spool_seal)."""
        return self.spool_private_key().public_key().public_bytes_raw()


def _create_active(keys_dir: Path) -> str:
    key_id = _create_field_key(keys_dir)
    if _publish(keys_dir / _ACTIVE, key_id.encode() + b"\n"):
        logger.info("created keyring in %s with field key %s", keys_dir, key_id)
        return key_id
    # Another process initialised the keyring at the same moment: its key is the one, ours never served.
    (keys_dir / f"{key_id}.key").unlink(missing_ok=True)
    winner = _read_active(keys_dir)
    if winner is None:
        raise KeyringError(f"{keys_dir / _ACTIVE}: vanished while the keyring was being created")
    return winner


def _create_field_key(keys_dir: Path) -> str:
    while True:
        key_id = f"f-{secrets.token_hex(4)}"
        if _publish(keys_dir / f"{key_id}.key", os.urandom(KEY_BYTES)):
            return key_id


def _read_active(keys_dir: Path) -> str | None:
    path = keys_dir / _ACTIVE
    try:
        key_id = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyringError(f"{path}: cannot read the active key id: {exc}") from exc
    if not KEY_ID.fullmatch(key_id):
        raise KeyringError(f"{path}: expected a key id like f-1a2b3c4d, found {key_id[:40]!r}")
    return key_id


def _read_key(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as file:
            status = os.fstat(fd)
            if status.st_size != KEY_BYTES:
                raise KeyringError(f"{path}: expected a {KEY_BYTES}-byte key, found {status.st_size} bytes")
            data = file.read()
    except FileNotFoundError as exc:
        raise KeyringError(f"{path}: key file is missing") from exc
    except OSError as exc:
        raise KeyringError(f"{path}: cannot read key file: {exc.strerror}") from exc
    if len(data) != KEY_BYTES:  # it changed between fstat and read
        raise KeyringError(f"{path}: expected a {KEY_BYTES}-byte key, read {len(data)} bytes")
    if status.st_mode & 0o077:
        logger.warning("%s: key file is accessible to group or others; it should be 0600", path)
    return data


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


def _publish(path: Path, data: bytes) -> bool:
    """Create `path` holding `data` unless it exists; True if this call created it."""
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
