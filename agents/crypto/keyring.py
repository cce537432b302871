"""The agent's keyring: the field-encryption keys and the spool seal's key pair, in `keys_dir` (its files
are described in ondisk/keys.py, which also opens the field keys for readers).

Every agent process (intake, sinks) builds its own Keyring from the same directory, and on a fresh
install several start at once. So each file is written under a private temporary name and
hard-linked into place (key_files.py): `link()` fails when the name exists, so exactly one process's
file wins and nobody ever reads half a key; the losers drop theirs and read the winner's.

Rotation makes a new field key and points `active` at it; old keys stay for decryption. `audit-agent
keys rotate` does it from another process: every Keyring looks at `active` (one stat) at most once a
second when asked for the active key, and follows it. The intake's Keyring is given a `Rotation`: it
counts the values each key seals (key_uses.py) and rotates by itself when the count or the key's age
reaches the configured bound.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from auditship.agents.crypto.key_files import file_stamp, publish, replace_file
from auditship.agents.crypto.key_uses import KeyUses
from auditship.agents.crypto.rotation import Rotation
from auditship.ondisk.errors import KeyringError
from auditship.ondisk.files import make_private_dirs
from auditship.ondisk.keys import ACTIVE, KEY_BYTES, SPOOL_KEY, FieldKeys, read_active, read_key

logger = logging.getLogger("auditship.crypto")

ACTIVE_CHECK_INTERVAL_S = 1.0
"""How often a Keyring looks whether another process moved `active` (keys rotate)."""


class Keyring(FieldKeys):
    """The field keys and the spool key pair. Build it with `load_or_create` (the agent) or `load`
    (readers and `keys rotate`, which must not create a keyring)."""

    def __init__(
        self,
        keys_dir: Path,
        active_key_id: str,
        rotation: Rotation | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(keys_dir, active_key_id)
        self._spool_private: X25519PrivateKey | None = None
        self._rotation = rotation
        self._clock = clock
        self._stamp = file_stamp(keys_dir / ACTIVE)
        self._next_check = time.monotonic() + ACTIVE_CHECK_INTERVAL_S
        self._uses: KeyUses | None = None
        self._created = 0.0
        self._next_rotation_try = 0.0

    @classmethod
    def load_or_create(
        cls, keys_dir: Path, rotation: Rotation | None = None, clock: Callable[[], float] = time.time
    ) -> Keyring:
        """The keyring in `keys_dir`, created when there is none. With `rotation` (the intake's), it
        counts the values each key seals and rotates when a bound is reached."""
        _make_private_dir(keys_dir)
        active = read_active(keys_dir) or _create_active(keys_dir)
        spool_key = keys_dir / SPOOL_KEY
        if not spool_key.exists():
            publish(spool_key, X25519PrivateKey.generate().private_bytes_raw())
        keyring = cls(keys_dir, active, rotation, clock)
        # Fail at start-up, naming the file, rather than at the first sensitive event.
        keyring.cipher(active)
        keyring.spool_public_key()
        return keyring

    @property
    def active_key_id(self) -> str:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + ACTIVE_CHECK_INTERVAL_S
            self._follow_active()
        return self._active

    def encryption_key(self, values: int) -> tuple[str, AESGCM]:
        """The active key's id and cipher, to seal `values` values. A counting keyring rotates first
        when they would take the key past its bound, or it is too old, and counts them."""
        key_id = self.active_key_id
        if self._rotation is None:
            return key_id, self.cipher(key_id)
        uses = self._counted(key_id)
        reason = self._rotation.reason(key_id, uses.count + values, self._created, self._clock())
        if reason is not None and time.monotonic() >= self._next_rotation_try:
            try:
                key_id = self.rotate(reason)
            except KeyringError as exc:
                # Events are not refused for it: the old key goes on, and rotating is tried each second.
                self._next_rotation_try = time.monotonic() + ACTIVE_CHECK_INTERVAL_S
                logger.error("%s, but rotating failed (the key stays in use): %s", reason, exc)
            uses = self._counted(key_id)
        uses.add(values)
        return key_id, self.cipher(key_id)

    def rotate(self, reason: str = "rotation asked for") -> str:
        """Create a field key and make it the active one; returns its id. Old keys stay."""
        old = self._active
        key_id = _create_field_key(self.keys_dir)
        # Its age is counted on this keyring's clock (a test's pinned one too), not the file system's.
        created = self._clock()
        path = self.keys_dir / f"{key_id}.key"
        try:
            os.utime(path, (created, created))
        except OSError as exc:
            raise KeyringError(f"{path}: cannot set its creation time: {exc.strerror}") from exc
        replace_file(self.keys_dir / ACTIVE, key_id.encode() + b"\n")
        self._stamp = file_stamp(self.keys_dir / ACTIVE)
        self._switch(key_id)
        logger.info(
            "field key %s is now active, replacing %s (%s); older keys stay for decryption",
            key_id,
            old,
            reason,
        )
        return key_id

    def close(self) -> None:
        """Write the exact use count of the key this keyring counts."""
        if self._uses is not None:
            self._uses.close()

    def spool_private_key(self) -> X25519PrivateKey:
        if self._spool_private is None:
            raw = read_key(self.keys_dir / SPOOL_KEY)
            self._spool_private = X25519PrivateKey.from_private_bytes(raw)
        return self._spool_private

    def spool_public_key(self) -> bytes:
        """The raw 32-byte X25519 public key emitters seal spool records to (shipper.spool_seal)."""
        return self.spool_private_key().public_key().public_bytes_raw()

    def _follow_active(self) -> None:
        """Take up the key `active` names when another process changed it (keys rotate)."""
        path = self.keys_dir / ACTIVE
        stamp = file_stamp(path)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            key_id = read_active(self.keys_dir)
            if key_id is None or key_id == self._active:
                return
            self.cipher(key_id)  # the key file must be there before it is used
        except KeyringError as exc:
            logger.error("%s; field key %s stays in use", exc, self._active)
            return
        old = self._active
        self._switch(key_id)
        logger.info("field key %s is now active, replacing %s (rotated by another process)", key_id, old)

    def _switch(self, key_id: str) -> None:
        self._active = key_id
        if self._uses is not None:
            self._uses.close()
            self._uses = None

    def _counted(self, key_id: str) -> KeyUses:
        if self._uses is None:
            self._uses = KeyUses.load(self.keys_dir, key_id)
            self._created = created_at(self.keys_dir, key_id)
        return self._uses


def created_at(keys_dir: Path, key_id: str) -> float:
    """When field key `key_id` was made: its file's mtime (a key file is never written again; the move
    from an older agent's data directory keeps it)."""
    try:
        return (keys_dir / f"{key_id}.key").stat().st_mtime
    except OSError as exc:
        raise KeyringError(f"{keys_dir / f'{key_id}.key'}: cannot stat key file: {exc.strerror}") from exc


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
