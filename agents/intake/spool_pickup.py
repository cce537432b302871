"""Picking up emitters' spool files (see shipper.spool_writer for the writer's side of the protocol)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from auditship.agents.crypto import Keyring, unseal
from auditship.agents.errors import UnreadableSpoolEntry
from auditship.ondisk.errors import DecryptionError
from auditship.ondisk.files import try_lock
from shipper.records import Tail, classify_tail, scan_records
from shipper.spool_writer import PLAIN, SEALED, SUFFIX

log = logging.getLogger("auditship.intake")
CLAIMED = ".claimed"
QUARANTINE = "quarantine"
_KINDS = {
    stat.S_IFDIR: "directory",
    stat.S_IFIFO: "FIFO",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}


class SpoolRecord:
    """One record of a spool file: a frame, or the reason it could not be read; and the file's owner
    and group (uid, gid), the frame's sender, read from the descriptor the records were read from."""

    __slots__ = ("frame", "owner", "reason")

    def __init__(self, frame: bytes, owner: tuple[int, int], reason: str | None = None) -> None:
        self.frame = frame
        self.owner = owner
        self.reason = reason


def claim(directories: list[Path]) -> list[Path]:
    """Take every spool file out of the emitters' way and return the claimed files, oldest first.

    Files claimed by an earlier run that died before finishing them are returned too. An entry that is
    not a regular file the agent can open is claimed as well, unlocked: reading it raises
    UnreadableSpoolEntry, and the intake moves it to quarantine.
    """
    claimed: list[Path] = []
    for directory in directories:
        if not directory.is_dir():
            continue
        claimed.extend(directory.glob(f"*{CLAIMED}"))
        for path in directory.glob(f"*{SUFFIX}"):
            target = path.with_name(f"{path.stem}.{time.time_ns()}{CLAIMED}")
            try:
                fd = _open(path)
            except FileNotFoundError:
                continue
            except UnreadableSpoolEntry:
                if _rename(path, target):
                    claimed.append(target)
                continue
            try:
                # The emitter holds this lock while it writes: after it, no record is half-written
                # and the emitter's next write finds the path gone and opens a new file. Without
                # waiting: a write takes microseconds, and whoever holds the lock longer must not
                # stop the intake; the next scan takes the file.
                if try_lock(fd) and _rename(path, target):
                    claimed.append(target)
            finally:
                os.close(fd)
    return sorted(claimed, key=_modified)


def read(path: Path, keyring: Keyring) -> Iterator[SpoolRecord]:
    """The records of a claimed file; a torn one (an emitter died mid-write) is yielded with its reason,
    and reading stops there.

    Raises UnreadableSpoolEntry, before any record when the entry cannot be opened or read as a regular
    file, after the records before the damage when one is corrupt: past a corrupt record the file may
    still hold records, which only a person can salvage, so the file is to be kept whole. Raises
    FileNotFoundError when the entry is gone (its owner removed it).
    """
    buffer, owner = _load(path)
    offset = 0
    for offset, payload in scan_records(buffer):  # noqa: B007 - offset is read after the loop
        yield _frame(payload, owner, keyring)
    tail = classify_tail(buffer, offset)
    reason = f"{path.name}: {tail.value} record at byte {offset} of {len(buffer)}; the rest is unreadable"
    if tail is Tail.CORRUPT:
        raise UnreadableSpoolEntry(reason)
    if tail is Tail.TORN:
        log.error("spool %s", reason)
        yield SpoolRecord(buffer[offset : offset + 65536], owner, reason)


def quarantine(path: Path) -> Path:
    """Move a spool entry the intake cannot take into `quarantine/` beside it (0700, the agent's),
    under a name no scan matches; returns where it went. Raises OSError when it cannot.

    Emitters may create any name in the spool directory: a `quarantine` of theirs (a link, a directory
    they own) is refused rather than filled."""
    directory = path.parent / QUARANTINE
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if os.fstat(fd).st_uid != os.geteuid():
            raise OSError(f"{directory} is not the agent's own directory")
        name = f"{path.name}.{time.time_ns()}"
        os.rename(path, name, dst_dir_fd=fd)
    finally:
        os.close(fd)
    return directory / name


def _open(path: Path) -> int:
    """A read-only descriptor of the regular file at `path`. Raises FileNotFoundError when it is gone,
    UnreadableSpoolEntry when it is anything else or cannot be opened.

    Whoever may write to the spool directory can put any entry there: a symbolic link (to a file of the
    agent's they cannot read themselves), a FIFO (an open that would wait for a writer for ever), a
    directory, a file the agent may not read. So: no following links, no waiting, and the type checked
    on the descriptor opened, not on the name, which may change in between."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnreadableSpoolEntry(
                f"{path.name}: a symbolic link, which the agent does not follow"
            ) from exc
        raise UnreadableSpoolEntry(f"{path.name}: cannot be opened: {exc.strerror}") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = _KINDS.get(stat.S_IFMT(mode), "special file")
        raise UnreadableSpoolEntry(f"{path.name}: a {kind}, not a regular file")
    return fd


def _load(path: Path) -> tuple[bytes, tuple[int, int]]:
    """The file's bytes, and its owner and group."""
    with open(_open(path), "rb") as file:
        status = os.fstat(file.fileno())
        try:
            return file.read(), (status.st_uid, status.st_gid)
        except OSError as exc:
            raise UnreadableSpoolEntry(f"{path.name}: cannot be read: {exc.strerror}") from exc


def _rename(path: Path, target: Path) -> bool:
    try:
        path.rename(target)
    except FileNotFoundError:
        return False
    return True


def _modified(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0  # gone since it was listed; reading it says so


def _frame(payload: bytes, owner: tuple[int, int], keyring: Keyring) -> SpoolRecord:
    kind, body = payload[:1], payload[1:]
    if kind == PLAIN:
        return SpoolRecord(body, owner)
    if kind == SEALED:
        try:
            return SpoolRecord(unseal(body, keyring, source="sealed spool record"), owner)
        except DecryptionError as exc:
            return SpoolRecord(body, owner, str(exc))
    return SpoolRecord(payload, owner, f"unknown spool record kind {kind!r}")
