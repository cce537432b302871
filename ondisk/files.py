"""File primitives the emitter and the agent share: writing all of a buffer, making private directories,
and the lock files a process holds for its life (with its pid in them, for whoever finds them held)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` at `fd`'s position; an OSError leaves what was written before it."""
    view = memoryview(data)
    while view:
        # One write() for all of it in practice: a regular file writes short only when it fails next.
        view = view[os.write(fd, view) :]


def make_private_dirs(directory: Path, *, tighten: bool = False) -> None:
    """Create `directory` and any missing parents as 0700, whatever the umask. An existing one is left as it
    is, unless `tighten`: then `directory` itself is made 0700 too (one only the agent uses, never one an
    operator may have chosen to share, such as a file sink's)."""
    missing = []
    path = directory
    while not path.exists():
        missing.append(path)
        path = path.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o700)
    if tighten:
        directory.chmod(0o700)


def try_lock(fd: int) -> bool:
    """Take the exclusive flock of `fd`'s file without waiting; False when another open file holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def lock_with_pid(fd: int) -> bool:
    """`try_lock`, and when it is taken, replace the file's content with this process's pid; False (the file
    untouched, so the holder's pid can be read from it) when another process holds it."""
    if not try_lock(fd):
        return False
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return True
