"""Picking up emitters' spool files (see shipper.spool_writer for the writer's side of the protocol).

Whoever may write to a spool directory can put any entry there, under any name, of any size: nothing
here trusts an entry's type, name, size or content. Names given here (claimed, quarantined) are made of
the entry's name cut and cleaned, so that they never pass NAME_MAX; a file is read a record at a time,
so that its size costs no memory, and only up to the size it had when it was opened.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
import time
import zlib
from collections.abc import Generator
from io import BufferedReader
from pathlib import Path
from typing import NamedTuple

from auditship.agents.crypto import Keyring, unseal
from auditship.agents.errors import UnreadableSpoolEntry
from auditship.ondisk.errors import DecryptionError
from auditship.ondisk.files import try_lock
from shipper.records import HEADER, MAX_RECORD_BYTES
from shipper.spool_writer import PLAIN, SEALED, SUFFIX

log = logging.getLogger("auditship.intake")
CLAIMED = ".claimed"
QUARANTINE = "quarantine"
NAME_KEPT = 200
"""Characters of an entry's name kept in the names given to it here: with a number and a suffix added
they stay well under NAME_MAX (255 bytes). An emitter's names are 54."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
TORN_KEPT_BYTES = 65536
"""What of a torn record goes to rejects/."""
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


class Claims(NamedTuple):
    files: list[Path]
    """The claimed files, oldest first."""
    failures: list[str]
    """Why an entry or a directory could not be claimed, one reason each, naming it: it stays where it
    is, and is tried again at the next scan."""


def claim(directories: list[Path]) -> Claims:
    """Take every spool file out of the emitters' way; returns the claimed files, and the reasons of
    those that could not be.

    Files claimed by an earlier run that died before finishing them are returned too. An entry that is
    not a regular file the agent can open is claimed as well, unlocked: reading it raises
    UnreadableSpoolEntry, and the intake moves it to quarantine. No entry's failure stops the others.
    """
    claims = Claims([], [])
    for directory in directories:
        try:
            if not directory.is_dir():
                continue
            claims.files.extend(directory.glob(f"*{CLAIMED}"))
            entries = list(directory.glob(f"*{SUFFIX}"))
        except OSError as exc:
            claims.failures.append(f"{directory}: cannot be listed: {exc}")
            continue
        for path in entries:
            try:
                target = _claim(path)
            except Exception as exc:  # noqa: BLE001 - one entry's failure leaves that entry only
                claims.failures.append(f"{path.name!r}: cannot be claimed: {exc!r}")
                continue
            if target is not None:
                claims.files.append(target)
    claims.files.sort(key=_modified)
    return claims


def printable(name: str) -> str:
    """`name` cut to NAME_KEPT characters of letters, digits, `.`, `_` and `-` (any other one becomes
    `_`): what an emitter's names are made of, and safe in a file name, a log line and JSON (a name
    that is not UTF-8 holds surrogates, which no encoder takes)."""
    return _UNSAFE.sub("_", name[:NAME_KEPT])


def read(path: Path, keyring: Keyring, max_bytes: int) -> Generator[SpoolRecord, None, None]:
    """The records of a claimed file, one at a time, up to the size it had when opened; a torn one (an
    emitter died mid-write) is yielded with its reason, and reading stops there.

    Raises UnreadableSpoolEntry, before any record when the entry cannot be opened or read as a regular
    file or is larger than `max_bytes`, after the records before the damage when one is corrupt: past a
    corrupt record the file may still hold records, which only a person can salvage, so the file is to
    be kept whole. Raises FileNotFoundError when the entry is gone (its owner removed it).
    """
    with open(_open(path), "rb") as file:
        status = os.fstat(file.fileno())
        size = status.st_size
        if size > max_bytes:
            raise UnreadableSpoolEntry(
                f"{path.name}: {size} bytes, more than intake.max_spool_file_bytes={max_bytes}; left unread"
            )
        owner = (status.st_uid, status.st_gid)
        offset = 0
        while offset < size:
            header = _read(file, min(HEADER.size, size - offset), path)
            if len(header) < HEADER.size:
                yield _torn(path, header, offset, size, owner)
                return
            length, crc = HEADER.unpack(header)
            if length == 0 or length > MAX_RECORD_BYTES:
                # No emitter writes an empty record; zeros are what a sparse or zero-filled file holds.
                raise UnreadableSpoolEntry(_damage(path, f"corrupt record (of {length} bytes)", offset, size))
            payload = _read(file, min(length, size - offset - HEADER.size), path)
            if len(payload) < length:
                yield _torn(path, header + payload, offset, size, owner)
                return
            if zlib.crc32(payload) != crc:
                raise UnreadableSpoolEntry(_damage(path, "corrupt record", offset, size))
            offset += HEADER.size + length
            yield _frame(payload, owner, keyring)


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
        name = f"{printable(path.name)}.{time.time_ns()}"
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


def _claim(path: Path) -> Path | None:
    """Rename the spool entry at `path` for the intake; where it went, or None when it is gone or its
    emitter holds its lock. Raises OSError when it cannot be renamed."""
    stem = path.name.removesuffix(SUFFIX)
    target = path.with_name(f"{printable(stem)}.{time.time_ns()}{CLAIMED}")
    try:
        fd = _open(path)
    except FileNotFoundError:
        return None
    except UnreadableSpoolEntry:
        return target if _rename(path, target) else None
    try:
        # The emitter holds this lock while it writes: after it, no record is half-written and the
        # emitter's next write finds the path gone and opens a new file. Without waiting: a write takes
        # microseconds, and whoever holds the lock longer must not stop the intake; the next scan takes
        # the file.
        if not (try_lock(fd) and _rename(path, target)):
            return None
    finally:
        os.close(fd)
    return target


def _read(file: BufferedReader, count: int, path: Path) -> bytes:
    """Up to `count` bytes (fewer only at the end of the file)."""
    try:
        return file.read(count)
    except OSError as exc:
        raise UnreadableSpoolEntry(f"{path.name}: cannot be read: {exc.strerror}") from exc


def _damage(path: Path, what: str, offset: int, size: int) -> str:
    return f"{path.name}: {what} at byte {offset} of {size}; the rest is unreadable"


def _torn(path: Path, data: bytes, offset: int, size: int, owner: tuple[int, int]) -> SpoolRecord:
    reason = _damage(path, "torn record", offset, size)
    log.error("spool %s", reason)
    return SpoolRecord(data[:TORN_KEPT_BYTES], owner, reason)


def _rename(path: Path, target: Path) -> bool:
    """Whether `path` was claimed as `target` (False: it is gone). A name too long or not made of what an
    emitter's names are is logged, since the claimed name shows only part of it."""
    try:
        path.rename(target)
    except FileNotFoundError:
        return False
    if not target.name.startswith(f"{path.name.removesuffix(SUFFIX)}."):
        log.info("spool entry %r claimed as %s", path.name, target.name)
    return True


def _modified(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0  # gone since it was listed (or unreachable): reading it says so


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
