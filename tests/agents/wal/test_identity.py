"""The WAL's identity: made once, read the same by every process, and never a half-written one."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from auditship.agents.wal.identity import IDENTITY_NAME, record_id, wal_identity


def test_the_identity_is_made_once_owner_only_and_read_back_the_same(tmp_path: Path) -> None:
    wal = tmp_path / "data" / "wal"
    made = wal_identity(wal)
    assert len(made) == 32 and int(made, 16) >= 0
    assert wal_identity(wal) == made
    assert (wal / IDENTITY_NAME).stat().st_mode & 0o777 == 0o600
    assert wal.stat().st_mode & 0o777 == 0o700
    assert sorted(path.name for path in wal.iterdir()) == [IDENTITY_NAME]  # no temporary file left
    assert wal_identity(tmp_path / "other") != made
    assert record_id(made, 42) == f"{made}-42"


def test_workers_starting_at_once_all_get_the_one_identity(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        found = pool.map(wal_identity, [tmp_path / "wal"] * 8)
    assert len(set(found)) == 1


def test_a_file_that_is_not_an_identity_is_an_error_not_replaced(tmp_path: Path) -> None:
    (tmp_path / IDENTITY_NAME).write_text("not an id\n")
    with pytest.raises(ValueError, match="expected 32 hex digits"):
        wal_identity(tmp_path)
    assert (tmp_path / IDENTITY_NAME).read_text() == "not an id\n"
