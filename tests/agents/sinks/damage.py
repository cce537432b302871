"""Ways to damage a real Parquet part, for the tests of the sink's compaction and of audit-query.

Each changes the file in place and says what DuckDB then reports (a piece of its message). They are the
kinds a disk or an operator's mistake produces: a file cut short, emptied, a footer or a page header
overwritten. DuckDB names the file for the first two, and not for the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import duckdb


def _footer_start(data: bytes) -> int:
    """Where the footer (Thrift FileMetaData) begins: its length is in the 4 bytes before the magic."""
    return len(data) - 8 - int.from_bytes(data[-8:-4], "little")


def overwrite_footer(path: Path) -> None:
    """The bytes after the footer's first field header become 0xff: a varint that never ends, DuckDB's
    "Variable-length int over 10 bytes." (the message of the issue), naming no file."""
    data = bytearray(path.read_bytes())
    start = _footer_start(bytes(data)) + 1
    data[start : start + 11] = b"\xff" * 11
    path.write_bytes(bytes(data))


def overwrite_page_header(path: Path) -> None:
    """The first page's header becomes 0xff bytes: the footer still reads, the data does not, and DuckDB's
    message names no file."""
    with duckdb.connect() as con:
        row = con.execute(
            "SELECT min(coalesce(dictionary_page_offset, data_page_offset)) FROM parquet_metadata(?)",
            [str(path)],
        ).fetchone()
    assert row is not None
    data = bytearray(path.read_bytes())
    data[row[0] : row[0] + 12] = b"\xff" * 12
    path.write_bytes(bytes(data))


def cut_in_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def empty(path: Path) -> None:
    os.truncate(path, 0)


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "footer overwritten": (overwrite_footer, "Variable-length int over 10 bytes."),
    "page header overwritten": (overwrite_page_header, "don't know what type"),
    "cut in half": (cut_in_half, "No magic bytes found at end of file"),
    "emptied": (empty, "too small to be a Parquet file"),
}
"""By name: the damage, and a piece of DuckDB's message about it."""
