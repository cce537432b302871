"""rejects/: frames the intake refused, one JSON line each, with the reason, so nothing is silently lost.

A record keeps the reason, the size, the frame's SHA-256 and its first KEPT_BYTES bytes sealed to the
agent's key (shipper.spool_seal, as spool records are), never in clear: a refused frame may carry sensitive
values the intake never got to encrypt. At most `max_bytes` are kept a day; past that, one record says
so, and the rest of the day's rejects are counted (`rejects_over_cap`) and logged, not kept.

Each is also logged, one WARNING naming the source and the reason, but at most one line per kind of
reason every WARN_INTERVAL_S; the next line of that kind says how many were left out. A flood of bad
frames (a broken emitter, a damaged spool file) so costs the journal a line every few seconds, while
rejects/ keeps every frame.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from shipper.spool_seal import seal

KEPT_BYTES = 64 * 1024
MAX_BYTES_PER_DAY = 64 * 1024 * 1024
WARN_INTERVAL_S = 10.0
log = logging.getLogger("auditship.intake")


class Reject(msgspec.Struct):
    time: datetime
    """When the frame was refused, in UTC: `"2026-12-05T17:43:26.123456Z"` in the file."""
    source: str
    reason: str
    size: int
    sha256: str
    frame_sealed_b64: str
    """The frame's first KEPT_BYTES bytes sealed to the agent's spool key, for forensics with its keys."""


def reason_kind(reason: str) -> str:
    """A reason without its particulars: the text before its first `: `, numbers as `#`. `invalid frame:
    Expected ...` is `invalid frame`; `frame of 2000000 bytes exceeds intake.max_frame_bytes=1048576` is
    `frame of # bytes exceeds intake.max_frame_bytes=#`."""
    return re.sub(r"\d+", "#", reason.partition(": ")[0])


class _Kind:
    __slots__ = ("left_out", "next_line_at")

    def __init__(self, next_line_at: float) -> None:
        self.next_line_at = next_line_at
        self.left_out = 0


class WarningLimit:
    """At most one line per kind every `interval_s`, counting those left out; fed the time, so that it is
    tested with explicit timestamps."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._kinds: dict[str, _Kind] = {}

    def admit(self, kind: str, now: float) -> int | None:
        """None: leave this line out. Otherwise log it, saying how many of its kind were left out before."""
        seen = self._kinds.get(kind)
        if seen is not None and now < seen.next_line_at:
            seen.left_out += 1
            return None
        # A kind quiet for a whole interval with nothing left out has nothing to report: forget it, or one
        # kind per damaged spool file (its name leads the reason) would pile up for the agent's life.
        self._kinds = {k: s for k, s in self._kinds.items() if s.left_out or now < s.next_line_at}
        self._kinds[kind] = _Kind(now + self.interval_s)
        return seen.left_out if seen is not None else 0

    def overdue(self, now: float) -> list[tuple[str, int]]:
        """The kinds whose interval has passed with lines left out, and how many: to be said now, not
        when a next line of their kind comes, which may be never (one refused client, then silence).
        Each starts a new interval."""
        due = [
            (kind, seen.left_out)
            for kind, seen in self._kinds.items()
            if seen.left_out and now >= seen.next_line_at
        ]
        for kind, _ in due:
            self._kinds[kind] = _Kind(now + self.interval_s)
        return due


class RejectLog:
    def __init__(
        self,
        directory: Path,
        seal_key: bytes,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = MAX_BYTES_PER_DAY,
    ) -> None:
        self.directory = directory
        self._seal_key = seal_key
        self._max_bytes = max_bytes
        self._day = ""
        self._kept = 0  # bytes kept today
        self.over_cap = 0
        """Rejects past the day's cap: counted and logged, not kept."""
        self.count = 0
        self.unwritten = 0
        """Rejects that could not be kept (rejects/ unwritable: a full disk); still counted and logged."""
        self._encoder = msgspec.json.Encoder()
        self._warnings = WarningLimit(WARN_INTERVAL_S)
        self._clock = clock

    def write(self, frame: bytes | memoryview, source: str, reason: str) -> None:
        """Append the frame to today's (UTC) rejects file, and log it unless its kind was just logged."""
        self.count += 1
        now = datetime.now(UTC)
        path = self.directory / now.strftime("rejects-%Y%m%d.jsonl")
        try:
            if path.name == self._day and self._kept >= self._max_bytes:
                self.over_cap += 1  # not even sealed: past the cap a flood costs a count
            else:
                self._keep(path, now, self._record(frame, source, reason, now))
        except OSError as exc:
            # A refused frame must not stop the intake; it was never accepted, so nothing is lost but
            # the forensic copy, which the count and the log line below still account for.
            self.unwritten += 1
            reason = f"{reason} (not kept: {exc})"
        left_out = self._warnings.admit(reason_kind(reason), self._clock())
        if left_out is not None:
            log.warning(
                "rejected a %d-byte frame from %s: %s (kept in %s%s)",
                len(frame),
                source,
                reason,
                path,
                f"; {left_out} more like it since the last such line were not logged" if left_out else "",
            )

    def say_overdue(self) -> None:
        """Log the count of rejects left out of the log whose kind has had no line for an interval."""
        for kind, left_out in self._warnings.overdue(self._clock()):
            log.warning(
                "rejected %d more frames (%s) since the last such line (kept in %s)",
                left_out,
                kind,
                self.directory,
            )

    def _record(self, frame: bytes | memoryview, source: str, reason: str, now: datetime) -> bytes:
        head = bytes(frame[:KEPT_BYTES])
        sealed = base64.b64encode(seal(head, self._seal_key)).decode()
        digest = hashlib.sha256(frame).hexdigest()
        return self._encoder.encode(Reject(now, source, reason, len(frame), digest, sealed)) + b"\n"

    def _keep(self, path: Path, now: datetime, record: bytes) -> None:
        """Append `record` to the day's file; the one that would pass the cap is replaced by a note."""
        if path.name != self._day:
            self._day, self._kept = path.name, path.stat().st_size if path.exists() else 0
        if self._kept >= self._max_bytes:
            self.over_cap += 1
            return
        capped = self._kept + len(record) > self._max_bytes
        if capped:
            self.over_cap += 1
            note = {"time": now, "cap_reached": self._max_bytes, "note": "later rejects today are not kept"}
            record = self._encoder.encode(note) + b"\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, record)
        finally:
            os.close(fd)
        self._kept = self._max_bytes if capped else self._kept + len(record)
