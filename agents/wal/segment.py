"""Segment files and the directories around them: names, listing, creation, owner-only permissions.

A segment is named by the LSN of its first record (`<first_lsn:020d>.wal`), so every record in it has a
LSN below the next segment's name: what a segment covers is known without opening it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from auditship.agents.durable import fsync_directory

SUFFIX = ".wal"
NAME_DIGITS = 20
CURSORS = "cursors"
QUARANTINE = "quarantine"


class Segment(NamedTuple):
    first_lsn: int
    path: Path


def segment_path(directory: Path, first_lsn: int) -> Path:
    return directory / f"{first_lsn:0{NAME_DIGITS}d}{SUFFIX}"


def _first_lsns(directory: Path) -> list[int]:
    try:
        names = os.listdir(directory)  # noqa: PTH208 -- readers poll this: names, not Path objects
    except FileNotFoundError:
        return []
    # Other files live here too (cursors/, the intake's dedupe index, a salvage in progress): not ours.
    return [
        int(name[:NAME_DIGITS])
        for name in names
        if len(name) == NAME_DIGITS + len(SUFFIX)
        and name.endswith(SUFFIX)
        and name[:NAME_DIGITS].isascii()
        and name[:NAME_DIGITS].isdigit()
    ]


def list_segments(directory: Path) -> list[Segment]:
    """The segments in `directory`, oldest first; [] when there are none (or no directory yet)."""
    return [Segment(first, segment_path(directory, first)) for first in sorted(_first_lsns(directory))]


def segment_after(directory: Path, first_lsn: int) -> Segment | None:
    """The oldest segment newer than the one starting at `first_lsn`; a reader polls this, so it builds
    no more than one path."""
    newer = [first for first in _first_lsns(directory) if first > first_lsn]
    return Segment(min(newer), segment_path(directory, min(newer))) if newer else None


def create_segment(directory: Path, first_lsn: int, durable: bool) -> int:
    """Create an empty segment for appending; `durable` also makes its name survive a power cut."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
    fd = os.open(segment_path(directory, first_lsn), flags, 0o600)
    if durable:
        fsync_directory(directory)
    return fd
