"""Sink cursors: `cursors/<sink>` holds, as decimal text, the last LSN the sink's destination has.

The file is replaced atomically (temporary file, fsync, rename, fsync of the directory), so after any
crash it holds the old LSN or the new one. Anything else in it is damage, and `read_cursor` refuses to
guess: 0 would send the whole WAL to the destination again, a later LSN would skip events nobody
delivered. An operator who knows which is right writes it (see `WalError`'s message). Whatever a cursor
says, no LSN is issued twice (reservation.py), so a rewound cursor only ever brings repeats.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from auditship.agents.durable import write_atomically
from auditship.agents.errors import WalError
from auditship.agents.wal.segment import CURSORS

log = logging.getLogger("auditship.wal")
SINK_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")


def check_sink_name(sink: str) -> str:
    """A sink name becomes a file name; refuse one that could leave the cursors directory or hide."""
    if not SINK_NAME.fullmatch(sink):
        raise ValueError(f"sink name {sink!r} cannot name a cursor file: use letters, digits, '_', '-', '.'")
    return sink


def cursor_path(directory: Path, sink: str) -> Path:
    return directory / CURSORS / check_sink_name(sink)


def read_cursor(path: Path) -> int | None:
    """The committed LSN; None when the sink never committed; WalError when the file is damaged."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    value = text.strip()
    if not (value.isascii() and value.isdigit()):
        raise WalError(
            f"{path}: expected the sink's last committed WAL seq (decimal digits), found {text[:40]!r}; "
            "write into it the last seq its destination holds; when unsure, a lower one: the sink sends "
            "what the WAL holds above it again, a repeat rather than a loss"
        )
    return int(value)


def committed_lsns(directory: Path) -> dict[str, int]:
    """Every readable cursor in `directory`, by sink, including sinks no longer configured."""
    cursors: dict[str, int] = {}
    try:
        paths = list((directory / CURSORS).iterdir())
    except FileNotFoundError:
        return cursors
    for path in paths:
        if not SINK_NAME.fullmatch(path.name):
            continue  # a temporary file of an interrupted commit
        try:
            lsn = read_cursor(path)
        except WalError as exc:
            log.error("%s", exc)
            continue
        if lsn is not None:
            cursors[path.name] = lsn
    return cursors


def write_cursor(path: Path, lsn: int) -> None:
    """Durably replace the cursor at `path` with `lsn`."""
    write_atomically(path, f"{lsn}\n".encode())
