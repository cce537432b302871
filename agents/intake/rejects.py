"""rejects/: frames the intake refused, one JSON line each, with the reason, so nothing is silently lost.

Each is also logged, one WARNING naming the source and the reason, but at most one line per kind of
reason every WARN_INTERVAL_S; the next line of that kind says how many were left out. A flood of bad
frames (a broken emitter, a damaged spool file) so costs the journal a line every few seconds, while
rejects/ keeps every frame.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec

KEPT_BYTES = 64 * 1024
WARN_INTERVAL_S = 10.0
log = logging.getLogger("auditship.intake")


class Reject(msgspec.Struct):
    time: datetime
    """When the frame was refused, in UTC: `"2026-12-05T17:43:26.123456Z"` in the file."""
    source: str
    reason: str
    size: int
    frame_b64: str
    """The frame's first KEPT_BYTES bytes, for forensics."""


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


class RejectLog:
    def __init__(self, directory: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
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
        reject = Reject(now, source, reason, len(frame), base64.b64encode(bytes(frame[:KEPT_BYTES])).decode())
        path = self.directory / now.strftime("rejects-%Y%m%d.jsonl")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, self._encoder.encode(reject) + b"\n")
            finally:
                os.close(fd)
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
