"""Why an object does not hash as digested: its events read back by their WAL seqs, against what the
digest says it held (first and last seq, how many, and for a file the holes the sink declared).

    reordered      every event is there, in another order
    sequence gap   events are missing (a deleted line or row)
    modified       anything else: a changed value, a file that no longer reads
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import duckdb

from auditship.ondisk.digests import DigestedObject
from auditship.ondisk.file_sink import CorruptFileError, line_seqs
from auditship.ondisk.lines import seq_of_line
from auditship.query.verify.report import Verdict

SHOWN = 5


class Diagnosis(NamedTuple):
    verdict: Verdict
    detail: str


_PART_SEQS = "SELECT wal_seq FROM read_parquet(?, file_row_number = true) ORDER BY file_row_number"


def diagnose_file(path: Path, entry: DigestedObject, gaps: Sequence[tuple[int, int]]) -> Diagnosis:
    """A closed file, or the current file's claimed prefix (its first `entry.size` bytes)."""
    try:
        if entry.kind == "current":
            with path.open("rb") as file:
                lines = file.read(entry.size).split(b"\n")[:-1]
            seqs = [seq_of_line(line) for line in lines]
        else:
            seqs = line_seqs(path)
    except (OSError, CorruptFileError) as exc:
        return Diagnosis(Verdict.MODIFIED, f"its bytes changed, and it no longer reads: {exc}")
    expected = None
    if entry.first_seq is not None and entry.last_seq is not None:
        held = set(range(entry.first_seq, entry.last_seq + 1))
        for first, last in gaps:
            held -= set(range(max(first, entry.first_seq), min(last, entry.last_seq) + 1))
        expected = held
    return _judge(seqs, entry, expected, "line")


def diagnose_part(db: duckdb.DuckDBPyConnection, path: Path, entry: DigestedObject) -> Diagnosis:
    """A part; which seqs it held is not known (its partition's are interleaved with others'), only how
    many, between which."""
    try:
        seqs: list[int | None] = [seq for (seq,) in db.execute(_PART_SEQS, [str(path)]).fetchall()]
    except duckdb.Error as exc:
        why = str(exc).splitlines()[0]
        return Diagnosis(Verdict.MODIFIED, f"its bytes changed, and DuckDB cannot read it: {why}")
    return _judge(seqs, entry, None, "row")


def _judge(
    seqs: Sequence[int | None], entry: DigestedObject, expected: set[int] | None, unit: str
) -> Diagnosis:
    if None in seqs:
        return Diagnosis(
            Verdict.MODIFIED, f"its bytes changed: {unit} {seqs.index(None) + 1} is no event record"
        )
    found = [seq for seq in seqs if seq is not None]
    # A changed digit of a seq looks like a lost line plus a repeated or foreign one: a change, not a gap.
    if (altered := _not_held(found, entry, expected)) is not None:
        return Diagnosis(Verdict.MODIFIED, f"its bytes changed: {unit} {altered}")
    count = entry.events if entry.events is not None else (len(expected) if expected is not None else None)
    missing = sorted(expected - set(found)) if expected is not None else []
    if missing or (count is not None and len(set(found)) < count):
        lost = len(missing) if missing else (count or 0) - len(set(found))
        shown = f": WAL seqs {', '.join(map(str, missing[:SHOWN]))}{'...' if len(missing) > SHOWN else ''}"
        return Diagnosis(
            Verdict.SEQUENCE_GAP, f"{lost} {unit}s gone since it was digested{shown if missing else ''}"
        )
    out_of_order = next((i for i in range(1, len(found)) if found[i] <= found[i - 1]), None)
    if out_of_order is not None and len(set(found)) == len(found) == (
        count if count is not None else len(found)
    ):
        return Diagnosis(
            Verdict.REORDERED,
            f"every {unit} is there, out of order: WAL seq {found[out_of_order - 1]} comes before "
            f"{found[out_of_order]} ({unit} {out_of_order})",
        )
    return Diagnosis(Verdict.MODIFIED, f"its bytes changed; its {len(found)} {unit}s keep their WAL seqs")


def _not_held(found: Sequence[int], entry: DigestedObject, expected: set[int] | None) -> str | None:
    """The first seq among `found` that the object cannot have held as digested (outside what it held,
    or a second time), described; None when every one is its own."""
    low, high = entry.first_seq, entry.last_seq
    seen: set[int] = set()
    for position, seq in enumerate(found, 1):
        if seq in seen:
            return f"{position} repeats WAL seq {seq}"
        seen.add(seq)
        outside = (
            seq not in expected
            if expected is not None
            else ((low is not None and seq < low) or (high is not None and seq > high))
        )
        if outside:
            return f"{position} holds WAL seq {seq}, which it did not hold"
    return None
