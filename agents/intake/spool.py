"""Picking up emitters' spool files (see shipper.spool for the writer's side of the protocol)."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from agents.crypto import DecryptionError, Keyring, unseal
from shipper.records import Tail, classify_tail, scan_records
from shipper.spool import PLAIN, SEALED, SUFFIX

log = logging.getLogger("auditship.intake")
CLAIMED = ".claimed"


class SpoolRecord:
    """One record of a spool file: a frame, or the reason it could not be read."""

    __slots__ = ("frame", "reason")

    def __init__(self, frame: bytes, reason: str | None = None) -> None:
        self.frame = frame
        self.reason = reason


def claim(directories: list[Path]) -> list[Path]:
    """Take every spool file out of the emitters' way and return the claimed files, oldest first.

    Files claimed by an earlier run that died before finishing them are returned too.
    """
    claimed: list[Path] = []
    for directory in directories:
        if not directory.is_dir():
            continue
        claimed.extend(directory.glob(f"*{CLAIMED}"))
        for path in directory.glob(f"*{SUFFIX}"):
            target = path.with_name(f"{path.stem}.{time.time_ns()}{CLAIMED}")
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                # The emitter holds this lock while it writes: after it, no record is half-written
                # and the emitter's next write finds the path gone and opens a new file.
                fcntl.flock(fd, fcntl.LOCK_EX)
                path.rename(target)
            finally:
                os.close(fd)
            claimed.append(target)
    return sorted(claimed, key=lambda p: p.stat().st_mtime)


def read(path: Path, keyring: Keyring) -> Iterator[SpoolRecord]:
    """The records of a claimed file; a damaged one is yielded with its reason, and reading stops there."""
    buffer = path.read_bytes()
    offset = 0
    for offset, payload in scan_records(buffer):  # noqa: B007 - offset is read after the loop
        yield _frame(payload, keyring)
    tail = classify_tail(buffer, offset)
    if tail is not Tail.CLEAN:
        reason = f"{path.name}: {tail.value} record at byte {offset} of {len(buffer)}; the rest is unreadable"
        log.error("spool %s", reason)
        yield SpoolRecord(buffer[offset : offset + 65536], reason)


def _frame(payload: bytes, keyring: Keyring) -> SpoolRecord:
    kind, body = payload[:1], payload[1:]
    if kind == PLAIN:
        return SpoolRecord(body)
    if kind == SEALED:
        try:
            return SpoolRecord(unseal(body, keyring, source="sealed spool record"))
        except DecryptionError as exc:
            return SpoolRecord(body, str(exc))
    return SpoolRecord(payload, f"unknown spool record kind {kind!r}")
