"""What verify says: a verdict per object (a digest, a closed file, the current file, a part, a stretch of
WAL seqs) and a summary.

    valid              as the digests say
    modified           its bytes are not the digested ones (or the agent found it changed as it digested it)
    missing            a digest names it and it is not there (a digest the chain or the run record needs)
    unexpected         there, and no digest names it although one should (written before the newest)
    reordered          its events are all there, in another order
    signature invalid  a digest not signed by a trusted key, or whose content is not what was signed
    chain broken       a digest whose link to the one before does not match that one
    sequence gap       WAL seqs the sink wrote that no object holds and nothing declares removed
    pending            written after the newest digest (the sink is running, or was killed): not covered
                       yet; checked for order and gaps only. Not a failure.

Everything but `valid` and `pending` fails the verification (`Report.ok`).
"""

from __future__ import annotations

import enum
from collections import Counter
from typing import TextIO

import msgspec


class Verdict(enum.StrEnum):
    VALID = "valid"
    MODIFIED = "modified"
    MISSING = "missing"
    UNEXPECTED = "unexpected"
    REORDERED = "reordered"
    SIGNATURE_INVALID = "signature invalid"
    CHAIN_BROKEN = "chain broken"
    SEQUENCE_GAP = "sequence gap"
    PENDING = "pending"


PASSING = frozenset({Verdict.VALID, Verdict.PENDING})


class Finding(msgspec.Struct, frozen=True):
    sink: str
    kind: str
    """digest, closed, current, part, or sequence (a stretch of WAL seqs)."""
    path: str
    """The object, relative to the data directory; for a sequence, the WAL seqs (`120-130`)."""
    verdict: Verdict
    detail: str = ""


class Summary(msgspec.Struct):
    sinks: list[str]
    digests: int
    """Digest files read."""
    objects: int
    """Objects checked (hashed or found missing), digests not included."""
    bytes_hashed: int
    seconds: float
    verdicts: dict[str, int]
    removed: int
    """Objects the digests declare removed on purpose (retention, compaction, max_files, quarantine)."""
    notes: list[str]
    """What this verification could not check, and why (no run record to hold the newest digest to)."""


class Report(msgspec.Struct):
    ok: bool
    summary: Summary
    findings: list[Finding]


def summarize(findings: list[Finding], summary: Summary) -> Report:
    summary.verdicts = dict(Counter(str(finding.verdict) for finding in findings))
    return Report(all(f.verdict in PASSING for f in findings), summary, findings)


def write_text(report: Report, out: TextIO, *, verbose: bool) -> None:
    """Each finding that is not valid (every one with `verbose`), then the summary."""
    for finding in report.findings:
        if verbose or finding.verdict is not Verdict.VALID:
            detail = f": {finding.detail}" if finding.detail else ""
            out.write(
                f"{finding.verdict.upper():<17} {finding.sink:<8} {finding.kind:<8} {finding.path}{detail}\n"
            )
    summary = report.summary
    counts = ", ".join(f"{count} {verdict}" for verdict, count in sorted(summary.verdicts.items()))
    outcome = "verified" if report.ok else "NOT VERIFIED"
    out.write(
        f"{outcome}: {', '.join(summary.sinks)}: {summary.digests} digests, "
        f"{summary.objects} objects ({counts or 'nothing to check'}), {summary.removed} removed on purpose; "
        f"{summary.bytes_hashed / 2**20:,.1f} MiB in {summary.seconds:.2f}s\n"
    )
    for note in summary.notes:
        out.write(f"note: {note}\n")
