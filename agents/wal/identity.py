"""The WAL's identity: a random id made with the WAL and kept in it (`wal/id`), so that (id, LSN) names
one record for ever.

A record's LSN is never issued twice within one WAL (seq.reserved), but a WAL made anew (its directory
lost, or another agent's) counts from 1 again; the id tells those apart. The sinks whose destination
keeps events for good (SQL, Elasticsearch) key each event by (id, LSN), the one thing about it that the
agent assigns: an event id is the sender's to choose, so keying by it let whoever sent an id first keep
the real event out. A batch offered again (after a crash, a lost acknowledgement, a redelivery) carries
the same LSNs under the same id, and so is stored once.

The id is made by whichever process asks first (the sink workers start at once): written whole to a
private temporary file, then linked to its name, which fails if another was faster. A reader therefore
sees a whole id or none, and every process of one agent reads the same one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from auditship.agents.durable import fsync_directory
from auditship.ondisk.files import make_private_dirs, write_all

IDENTITY_NAME = "id"
_ID_BYTES = 16
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def wal_identity(directory: Path) -> str:
    """The id of the WAL in `directory` (32 hex digits), made now if it has none."""
    path = directory / IDENTITY_NAME
    if (found := _read(path)) is not None:
        return found
    make_private_dirs(directory)
    made = secrets.token_hex(_ID_BYTES)
    temporary = directory / f".{IDENTITY_NAME}.{os.getpid()}.tmp"
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, _CREATE_FLAGS, 0o600)
    try:
        write_all(fd, f"{made}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)
    except FileExistsError:  # another worker made it first: its id is the WAL's
        pass
    finally:
        temporary.unlink()
    fsync_directory(directory)
    found = _read(path)
    if found is None:
        raise ValueError(f"{path}: not a WAL id")
    return found


def record_id(wal_id: str, lsn: int) -> str:
    """The record's name where a destination takes one string (Elasticsearch's `_id`)."""
    return f"{wal_id}-{lsn}"


def _read(path: Path) -> str | None:
    """The id in `path`; None when there is no such file. ValueError for a file that is not an id, which
    no process of ours writes: a WAL whose records' names are in doubt must not be used silently."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    try:
        text = os.read(fd, 2 * _ID_BYTES + 2).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    if len(text) != 2 * _ID_BYTES or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{path}: expected {2 * _ID_BYTES} hex digits, got {text[:40]!r}")
    return text
