"""Continuity: the WAL seqs a sink wrote, from where its chain began to the newest digest's
`seq_through` (and on, through what is pending), are each in one of its objects, or declared: a hole the
sink had no event for, or an object removed on purpose. Any other hole is a sequence gap, even when
every object left hashes as digested.

The file sink's objects are runs of seqs (closed files, then the current file), so their digested
ranges are swept. A lake's parts interleave (one per service and day), so the lake's own rows are read:
DuckDB reads the `wal_seq` column of every part and finds the holes between consecutive seqs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import duckdb

from auditship.ondisk.digests import DigestedObject
from auditship.ondisk.lake_layout import PART
from auditship.query.verify.report import Finding, Verdict
from auditship.query.verify.state import SinkState

Range = tuple[int, int]
SHOWN = 20
_CLOSED_NAME = re.compile(r"-(\d+)-(\d+)\.(?:jsonl|log)(?:\.zst|\.gz)?$")
_HOLES = """
    SELECT prev + 1, wal_seq - 1 FROM (
        SELECT wal_seq, lag(wal_seq) OVER (ORDER BY wal_seq) AS prev
        FROM read_parquet(?, union_by_name = true)
    ) WHERE wal_seq > prev + 1
"""
_BOUNDS = "SELECT min(wal_seq), max(wal_seq) FROM read_parquet(?, union_by_name = true)"


def file_holes(state: SinkState) -> list[Range]:
    """Seqs from the chain's start to `seq_through` that no closed file, no current-file claim and no
    declared hole covers."""
    covered = list(_declared(state))
    covered += [held for item in state.objects.values() if (held := _range(item.entry)) is not None]
    if state.claims and (held := _range(state.claims[-1].entry)) is not None:
        covered.append(held)
    return _uncovered(state.start_through + 1, state.seq_through, covered)


def lake_holes(
    db: duckdb.DuckDBPyConnection, parts: list[Path], state: SinkState, bad: list[Range]
) -> list[Range]:
    """Seqs from the chain's start to the last row (or `seq_through`, if further) held by no part read
    and not declared; holes inside objects already reported bad are theirs, not reported again."""
    if not parts:
        holes = (
            [(state.start_through + 1, state.seq_through)] if state.seq_through > state.start_through else []
        )
    else:
        files = [str(path) for path in parts]
        low, high = db.execute(_BOUNDS, [files]).fetchone() or (None, None)
        holes = [(int(a), int(b)) for a, b in db.execute(_HOLES, [files]).fetchall()]
        holes.append((state.start_through + 1, (low or 1) - 1))
        holes.append(((high or 0) + 1, state.seq_through))
    explained = list(_declared(state)) + bad
    return [hole for first, last in holes if first <= last for hole in _uncovered(first, last, explained)]


def findings(sink: str, holes: list[Range]) -> list[Finding]:
    shown = [
        Finding(sink, "sequence", f"{first}-{last}", Verdict.SEQUENCE_GAP, _what(first, last))
        for first, last in holes[:SHOWN]
    ]
    if len(holes) > SHOWN:
        rest = sum(last - first + 1 for first, last in holes[SHOWN:])
        shown.append(
            Finding(
                sink, "sequence", "...", Verdict.SEQUENCE_GAP, f"{len(holes) - SHOWN} more holes, {rest} seqs"
            )
        )
    return shown


def _what(first: int, last: int) -> str:
    return (
        f"{last - first + 1} WAL seqs the sink wrote are in no object, and no digest declares them removed "
        "or never written"
    )


def _declared(state: SinkState) -> Iterable[Range]:
    """The declared holes, and the ranges of what was removed on purpose."""
    yield from state.gaps
    for path, removed in state.removed.items():
        held = _range(removed.listed.entry) if removed.listed is not None else None
        if held is not None or (held := _range_of_name(path)) is not None:
            yield held


def _range_of_name(path: str) -> Range | None:
    """The WAL range a closed file's or a part's name carries."""
    name = path.rsplit("/", 1)[-1]
    match = PART.match(name) or _CLOSED_NAME.search(name)
    return (int(match[1]), int(match[2])) if match else None


def _range(entry: DigestedObject) -> Range | None:
    if entry.first_seq is None or entry.last_seq is None:
        return None
    return entry.first_seq, entry.last_seq


def _uncovered(first: int, last: int, covered: list[Range]) -> list[Range]:
    """The parts of [first, last] outside every range of `covered`."""
    holes = []
    position = first
    for start, end in sorted(covered):
        if end < position:
            continue
        if start > last:
            break
        if start > position:
            holes.append((position, start - 1))
        position = max(position, end + 1)
        if position > last:
            return holes
    if position <= last:
        holes.append((position, last))
    return holes
