"""Key files written whole or not at all: under a private temporary name, then linked (`publish`, which
never replaces) or renamed (`replace_file`) into place, durably, so that no reader sees half a file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from auditship.agents.durable import fsync_directory
from auditship.ondisk.errors import KeyringError
from auditship.ondisk.files import write_all


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


def replace_file(path: Path, data: bytes) -> None:
    try:
        _write_temp(path.parent, path.name, data).replace(path)
        fsync_directory(path.parent)
    except OSError as exc:
        raise KeyringError(f"{path}: cannot write: {exc.strerror}") from exc


Stamp = tuple[int, int] | None


def file_stamp(path: Path) -> Stamp:
    """What changes when a key file is replaced (a new inode) or written over; None when it is absent."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns
