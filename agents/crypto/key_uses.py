"""How many values each field key has sealed, kept in keys_dir so that a restart does not reset it.

AES-GCM with random 96-bit nonces must seal well under 2^32 values under one key; the intake counts
here and rotates (keyring.py) before `keys.rotate_after_encryptions`.

    <keys_dir>/f-1a2b3c4d.uses    "<count> <reserved>\\n"

`count` is exact as of the last write: at most a second old while the agent runs, exact after a clean
stop. `reserved` is what the count may reach before the file is written again: it is rewritten,
durably, before an encryption goes past it. So after a crash the true count is at most `reserved`,
which the next start takes as the count: erring high, by at most RESERVE_BLOCK.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import NamedTuple

from auditship.agents.crypto.key_files import replace_file
from auditship.ondisk.errors import KeyringError

logger = logging.getLogger("auditship.crypto")

RESERVE_BLOCK = 1 << 16
"""Encryptions reserved per durable write: at most this many are counted twice after a crash."""
WRITE_INTERVAL_S = 1.0
"""The exact count is written at most this often while it changes."""
UNREADABLE = 1 << 32
"""The count taken for a file that cannot be read: the key is rotated rather than used past a bound."""


class Uses(NamedTuple):
    sealed: int
    reserved: int


def uses_path(keys_dir: Path, key_id: str) -> Path:
    return keys_dir / f"{key_id}.uses"


def read_uses(path: Path) -> Uses | None:
    """The counts in `path`; (0, 0) when there is no file (a key that sealed nothing yet, or one made
    before keys were counted); None, with a warning naming the file, when it cannot be read."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return Uses(0, 0)
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("%s: cannot read the key's use count: %s", path, exc)
        return None
    fields = text.split()
    if len(fields) != 2 or not all(field.isdigit() for field in fields):
        logger.warning("%s: expected '<count> <reserved>', found %r", path, text[:40])
        return None
    return Uses(int(fields[0]), int(fields[1]))


class KeyUses:
    """The running count of one key, written to its file (see the module's docstring)."""

    def __init__(self, path: Path, count: int) -> None:
        self.path = path
        self.count = count
        self._reserved = count
        self._written = count
        self._next_write = 0.0

    @classmethod
    def load(cls, keys_dir: Path, key_id: str) -> KeyUses:
        """The count to go on from: the reserved one (see the module's docstring)."""
        path = uses_path(keys_dir, key_id)
        uses = read_uses(path)
        return cls(path, UNREADABLE if uses is None else max(uses))

    def add(self, count: int) -> None:
        self.count += count
        if self.count > self._reserved:
            self._write(self.count + RESERVE_BLOCK)
        elif self.count != self._written and time.monotonic() >= self._next_write:
            self._write(self._reserved)

    def close(self) -> None:
        """Write the exact count, reserving nothing: the key is no longer used by this process."""
        if self._written != self.count or self._reserved != self.count:
            self._write(self.count)

    def _write(self, reserved: int) -> None:
        # Moved on even when the write fails, so that it is tried again in a second, not per value.
        self._reserved = reserved
        self._next_write = time.monotonic() + WRITE_INTERVAL_S
        try:
            replace_file(self.path, f"{self.count} {reserved}\n".encode())
        except KeyringError as exc:
            logger.warning("%s (tried again within a second; a restart may count this key low)", exc)
            return
        self._written = self.count
