"""Continuity on the digests' claims, and on the rows of parts no digest lists yet."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from auditship.ondisk.digests import DigestedObject, RemovedObject
from auditship.query.verify.continuity import file_holes, lake_unaccounted, pending_holes
from auditship.query.verify.state import Listed, Removed, SinkState

WHEN = datetime(2024, 5, 1, tzinfo=UTC)


def listed(kind: str, first: int, last: int, events: int) -> Listed:
    entry = DigestedObject(f"{kind}-{first}-{last}", kind, 1, "00", first, last, events)  # type: ignore[arg-type]
    return Listed(entry, 1, WHEN)


def test_file_ranges_with_a_hole_that_nothing_declares_are_a_gap() -> None:
    """Closed files 1-10 and 21-30, the current file 31-35; 11-15 declared, 16-20 not."""
    state = SinkState(
        objects={"a": listed("closed", 1, 10, 10), "b": listed("closed", 21, 30, 10)},
        claims=[listed("current", 31, 35, 5)],
        gaps=[(11, 15)],
        seq_through=35,
    )
    assert file_holes(state) == [(16, 20)]
    state.removed["files/audit-16-20.jsonl.zst"] = Removed(
        RemovedObject("files/audit-16-20.jsonl.zst", "retention", "p"), None
    )
    assert file_holes(state) == []


def test_the_lake_must_account_for_every_seq_in_parts_removed_parts_or_declared_holes() -> None:
    """Two services' parts interleave over 1-20: 8 + 7 events, 3 declared, 2 removed by retention (counted);
    a part compaction replaced is not counted twice."""
    state = SinkState(
        objects={"a": listed("part", 1, 19, 8), "b": listed("part", 2, 20, 7)},
        removed={
            "r": Removed(RemovedObject("r", "retention", "p"), listed("part", 5, 6, 2)),
            "c": Removed(RemovedObject("c", "compaction", "a", "a"), listed("part", 1, 9, 4)),
        },
        gaps=[(11, 13)],
        seq_through=20,
    )
    assert lake_unaccounted(state) is None
    state.objects["b"] = listed("part", 2, 20, 6)
    finding = lake_unaccounted(state)
    assert finding is not None and finding.verdict == "sequence gap" and "account for 16" in finding.detail


def test_rows_of_parts_no_digest_lists_yet_go_on_from_the_newest_digest_without_a_hole(
    tmp_path: Path,
) -> None:
    db = duckdb.connect()
    for name, first, last in (("a", 11, 14), ("b", 15, 20)):
        rows = f"SELECT range AS wal_seq FROM range({first}, {last + 1}) WHERE range <> 17"
        db.execute(f"COPY ({rows}) TO '{tmp_path / name}.parquet'")
    parts = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    assert pending_holes(db, parts, 10) == [(17, 17)]
    assert pending_holes(db, parts, 8) == [(9, 10), (17, 17)]
