"""Continuity: the WAL seqs a sink wrote, from where its chain began to the newest digest's
`seq_through`, are each in one of its objects, or declared: a hole the sink had no event for, or an
object removed on purpose. Any other hole is a sequence gap.

The agent writes every object's claims (first and last seq, events) from the `wal_seq` of each event in
it, and an object that hashes as digested holds exactly those events; one that does not is read back
(diagnose.py), which names the missing seqs. So continuity is checked on the claims: the file sink's
objects are runs of seqs (closed files, then the current file), whose ranges are swept; a lake's parts
interleave (one per service and day), so their events are counted against the seqs they must account
for. What is pending (written after the newest digest, with no claims yet) is read: its lines' or its
rows' `wal_seq`s (DuckDB) must go on from `seq_through` without a hole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import duckdb

from auditship.ondisk.digests import DigestedObject
from auditship.query.verify.report import Finding, Verdict
from auditship.query.verify.state import SinkState

Range = tuple[int, int]
SHOWN = 20
_CLOSED_NAME = re.compile(r"-(\d+)-(\d+)\.(?:jsonl|log)(?:\.zst|\.gz)?$")
# The first row (prev NULL) and each row after a hole.
_EDGES = """
    SELECT prev, wal_seq FROM (
        SELECT wal_seq, lag(wal_seq) OVER (ORDER BY wal_seq) AS prev
        FROM read_parquet(?, union_by_name = true)
    ) WHERE prev IS NULL OR wal_seq > prev + 1
"""


def file_holes(state: SinkState) -> list[Range]:
    """Seqs from the chain's start to `seq_through` that no closed file, no current-file claim and no
    declared hole covers."""
    covered = list(_declared(state))
    covered += [held for item in state.objects.values() if (held := _range(item.entry)) is not None]
    if state.claims and (held := _range(state.claims[-1].entry)) is not None:
        covered.append(held)
    return _uncovered(state.start_through + 1, state.seq_through, covered)


def lake_unaccounted(state: SinkState) -> Finding | None:
    """The events the digests say the lake's parts held (those there, and those removed on purpose but not
    merged into another), with the declared holes, must number the seqs from the chain's start to
    `seq_through`; None when they do, or when a part holds seqs from both sides of the start (then they
    cannot be counted apart)."""
    start, through = state.start_through, state.seq_through
    held = [item.entry for item in state.objects.values() if item.entry.kind == "part"]
    held += [
        removed.listed.entry
        for removed in state.removed.values()
        if removed.listed is not None and removed.removal.reason not in ("compaction", "compaction_undone")
    ]
    events = 0
    for entry in held:
        if entry.last_seq is None or entry.last_seq <= start:
            continue
        if entry.events is None or entry.first_seq is None or entry.first_seq <= start:
            return None
        events += entry.events
    declared = sum(
        min(last, through) - max(first, start + 1) + 1 for first, last in state.gaps if last > start
    )
    if events + declared == through - start:
        return None
    return Finding(
        "parquet",
        "sequence",
        f"{start + 1}-{through}",
        Verdict.SEQUENCE_GAP,
        f"of these {through - start} WAL seqs the digests account for {events} in parts and {declared} in "
        "declared holes: events the lake should hold are in none of its parts",
    )


def pending_holes(db: duckdb.DuckDBPyConnection, parts: list[Path], after: int) -> list[Range]:
    """The holes in the `wal_seq`s of parts no digest lists yet, which must go on from `after`."""
    if not parts:
        return []
    rows = db.execute(_EDGES, [[str(path) for path in parts]]).fetchall()
    holes = [(int(prev) + 1, int(seq) - 1) for prev, seq in rows if prev is not None and seq > prev + 1]
    lowest = min((int(seq) for prev, seq in rows if prev is None), default=after + 1)
    if lowest > after + 1:
        holes.insert(0, (after + 1, lowest - 1))
    return holes


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
    """The declared holes, and the ranges of the files removed on purpose."""
    yield from state.gaps
    for path, removed in state.removed.items():
        held = _range(removed.listed.entry) if removed.listed is not None else None
        if held is not None or (held := _range_of_name(path)) is not None:
            yield held


def _range_of_name(path: str) -> Range | None:
    """The WAL range a closed file's name carries."""
    match = _CLOSED_NAME.search(path)
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
