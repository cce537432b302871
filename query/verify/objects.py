"""Checking a sink's objects on disk against its replayed digests: each listed object must be there and
hash as listed; the current file must begin with every prefix claimed of it; an object no digest names
is pending (written after the newest digest, while the sink may still be running) or unexpected.

Hashing is the cost of a verification, so files are hashed by a pool of threads (hashlib releases the
GIL on large buffers: about one core's worth of SHA-256 each), and only what does not hash as listed is
read back for its events (diagnose.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import duckdb

from auditship.ondisk import file_sink
from auditship.ondisk.digests import DigestedObject, object_path
from auditship.ondisk.hashing import CHUNK, sha256_file
from auditship.ondisk.lake_layout import Part, partitions, parts
from auditship.ondisk.lines import seq_of_line
from auditship.query.verify.diagnose import Diagnosis, diagnose_file, diagnose_part
from auditship.query.verify.report import Finding, Verdict
from auditship.query.verify.state import Listed, SinkState

Window = tuple[datetime | None, datetime | None]


class ObjectChecker:
    """One sink's objects, checked against its state within a window of digest times; what it found
    accumulates in its attributes."""

    def __init__(self, data_dir: Path, sink: str, state: SinkState, window: Window) -> None:
        self.data_dir = data_dir
        self.sink = sink
        self.state = state
        self.window = window
        self.findings: list[Finding] = []
        self.objects = 0
        self.bytes_hashed = 0
        self.pending_parts: list[Path] = []
        """Parts no digest lists yet, whose rows the continuity check reads."""

    def listed(self, pool: ThreadPoolExecutor, db: Callable[[], duckdb.DuckDBPyConnection]) -> None:
        """Every closed file or part the digests list (in the window): there, and hashing as listed."""
        listed = [
            item for item in self.state.objects.values() if item.entry.kind != "current" and self._in(item)
        ]
        paths = [self.data_dir / item.entry.path for item in listed]
        for item, path, hashed in zip(listed, paths, pool.map(_hash, paths), strict=True):
            entry = item.entry
            self.objects += 1
            found = Diagnosis(Verdict.VALID, "")
            if isinstance(hashed, str):
                found = Diagnosis(Verdict.MISSING, f"listed by digest {item.number}; {hashed}")
            else:
                self.bytes_hashed += hashed[0]
                if hashed != (entry.size, entry.sha256):
                    found = (
                        diagnose_part(db(), path, entry)
                        if entry.kind == "part"
                        else diagnose_file(path, entry, self.state.gaps)
                    )
                elif entry.anomaly is not None:
                    found = Diagnosis(
                        Verdict.MODIFIED, f"the agent found, as it digested it: {entry.anomaly}"
                    )
            self.findings.append(Finding(self.sink, entry.kind, entry.path, found.verdict, found.detail))

    def current(self) -> CurrentChecked | None:
        """The current file: every claim of its generation (the claims since it was last rotated) is a
        prefix of it, hashed in one pass; what follows the longest is pending, or unexpected after a final
        digest. Touches nothing of the checker's, so that it runs in a thread beside `listed`; `add` it."""
        claims = self.state.claims
        if not claims or not self._in(claims[-1]):
            return None
        latest = claims[-1].entry
        generation = [
            c for c in claims if c.entry.first_seq == latest.first_seq and c.entry.path == latest.path
        ]
        path = self.data_dir / latest.path
        if not path.exists():
            if not latest.size:
                return CurrentChecked([], 0)
            detail = f"digest {claims[-1].number} claims {latest.size} bytes of it"
            return CurrentChecked([Finding(self.sink, "current", latest.path, Verdict.MISSING, detail)], 0)
        verdict, detail, hashed = _prefixes(path, generation, self.state.gaps)
        found = [Finding(self.sink, "current", latest.path, verdict, detail)]
        tail = _tail(path, latest, self.state)
        if tail is not None:
            found.append(Finding(self.sink, "current", f"{latest.path} after byte {latest.size}", *tail))
        return CurrentChecked(found, hashed)

    def add(self, checked: CurrentChecked | None) -> None:
        if checked is not None:
            self.objects += 1
            self.findings += checked.findings
            self.bytes_hashed += checked.bytes_hashed

    def undigested_files(self, current: Path) -> None:
        """Closed files no digest names: pending when they follow every digested one and the sink did not
        stop after its newest digest; unexpected otherwise."""
        if self.window[1] is not None or not current.parent.is_dir():
            return
        state = self.state
        closed_ones = [item.entry for item in state.objects.values() if item.entry.kind == "closed"]
        digested = max((entry.last_seq or 0 for entry in closed_ones), default=state.start_through)
        for closed in file_sink.scan_closed(current.parent, current.stem):
            self._unnamed(
                closed.path, "closed", closed.first_seq > digested, "closed after the newest digest"
            )

    def undigested_parts(self, lake: Path) -> None:
        """Parts no digest names: pending when they hold only seqs after the newest digest's and the sink
        did not stop after it; unexpected otherwise."""
        if self.window[1] is not None or not lake.is_dir():
            return
        for part in _all_parts(lake):
            if self._unnamed(
                part.path, "part", part.first > self.state.seq_through, "written after the newest digest"
            ):
                self.pending_parts.append(part.path)

    def _unnamed(self, path: Path, kind: str, new: bool, why_pending: str) -> bool:
        """Report `path` if no digest names it; True when it is pending."""
        where = object_path(self.data_dir, path)
        if where in self.state.objects or where in self.state.removed:
            return False
        self.objects += 1
        if new and not self.state.final:
            self.findings.append(Finding(self.sink, kind, where, Verdict.PENDING, why_pending))
            return True
        after = "the sink's final digest" if self.state.final else "by seqs no later than the newest digest"
        detail = f"no digest names it, and it is not new ({after})"
        self.findings.append(Finding(self.sink, kind, where, Verdict.UNEXPECTED, detail))
        return False

    def _in(self, listed: Listed) -> bool:
        since, until = self.window
        return (since is None or listed.written >= since) and (until is None or listed.written < until)


class CurrentChecked(NamedTuple):
    findings: list[Finding]
    bytes_hashed: int


def _prefixes(path: Path, generation: list[Listed], gaps: list[tuple[int, int]]) -> tuple[Verdict, str, int]:
    """The verdict on the current file's claimed prefixes, and the bytes hashed."""
    claims = sorted(generation, key=lambda listed: listed.entry.size)
    digest = hashlib.sha256()
    read = 0
    with path.open("rb", buffering=0) as file:
        for claim in claims:
            entry = claim.entry
            while read < entry.size and (chunk := file.read(min(CHUNK, entry.size - read))):
                digest.update(chunk)
                read += len(chunk)
            if read < entry.size or digest.hexdigest() != entry.sha256:
                # Read back against the longest claim, which covers every line this one does: a line moved
                # across this claim's end must not pass for a missing one.
                verdict, detail = diagnose_file(path, claims[-1].entry, gaps)
                return (
                    verdict,
                    f"its first {entry.size} bytes, digested in digest {claim.number}: {detail}",
                    read,
                )
    anomaly = next((c.entry.anomaly for c in claims if c.entry.anomaly is not None), None)
    if anomaly is not None:
        return Verdict.MODIFIED, f"the agent found, as it digested it: {anomaly}", read
    return Verdict.VALID, "", read


def _tail(path: Path, latest: DigestedObject, state: SinkState) -> tuple[Verdict, str] | None:
    """What follows the longest claim: nothing after a final digest; else its lines in order, from the seq
    after the claim's last, with no hole."""
    size = path.stat().st_size
    if size <= latest.size:
        return None
    if state.final:
        return Verdict.UNEXPECTED, f"{size - latest.size} bytes written after the sink's final digest"
    with path.open("rb") as file:
        file.seek(latest.size)
        lines = file.read(size - latest.size).split(b"\n")[:-1]
    after = latest.last_seq if latest.last_seq is not None else state.seq_through
    return _pending([seq_of_line(line) for line in lines], after, f"{len(lines)} lines")


def _pending(seqs: list[int | None], after: int, what: str) -> tuple[Verdict, str]:
    """Events written after the newest digest: in order and without a hole from the seq after `after`."""
    expected = after + 1
    for index, seq in enumerate(seqs):
        if seq is None:
            return Verdict.MODIFIED, f"{what} not yet digested; number {index + 1} is no event record"
        if seq < expected:
            return Verdict.REORDERED, f"{what} not yet digested; WAL seq {seq} comes after {expected - 1}"
        if seq > expected:
            return (
                Verdict.SEQUENCE_GAP,
                f"{what} not yet digested; WAL seqs {expected}-{seq - 1} are missing before line {index + 1}",
            )
        expected += 1
    return Verdict.PENDING, f"{what} written after the newest digest"


def _all_parts(lake: Path) -> Iterator[Part]:
    for directory in partitions(lake):
        yield from parts(directory)


def _hash(path: Path) -> tuple[int, str] | str:
    """(size, SHA-256) of a file; why not, when it cannot be read."""
    try:
        return sha256_file(path)
    except FileNotFoundError:
        return "it is not there"
    except OSError as exc:
        return f"it cannot be read: {exc.strerror}"
