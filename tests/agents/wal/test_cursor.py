"""Sink cursors on disk: replaced atomically, owner-only, and never confused with their temporary files."""

from __future__ import annotations

import stat
from pathlib import Path

from auditship.agents.wal.cursor import committed_lsns, cursor_path, read_cursor, write_cursor


def test_a_cursor_is_replaced_whole_and_leaves_no_temporary_file(wal_dir: Path) -> None:
    """Each commit replaces the file by rename: it holds the new seq, owner-only, and nothing else is left."""
    path = cursor_path(wal_dir, "sql")
    path.parent.mkdir(parents=True)
    write_cursor(path, 7)
    write_cursor(path, 1234)
    assert read_cursor(path) == 1234
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["sql"]


def test_a_sink_that_never_committed_has_no_cursor(wal_dir: Path) -> None:
    """No file means no commit yet (the reader starts at the beginning), not an error."""
    assert read_cursor(cursor_path(wal_dir, "sql")) is None


def test_the_temporary_file_of_an_interrupted_commit_is_not_a_cursor(wal_dir: Path) -> None:
    """A crash between writing the temporary file and the rename leaves `.sink.tmp`: it is neither a
    sink's cursor nor damage."""
    path = cursor_path(wal_dir, "sql")
    path.parent.mkdir(parents=True)
    write_cursor(path, 5)
    (path.parent / ".sql.tmp").write_text("9")
    assert committed_lsns(wal_dir) == {"sql": 5}
