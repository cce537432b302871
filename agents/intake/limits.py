"""A per-sender rate limit on the socket intake: no sender can take the intake from the others.

A token bucket per sender (its uid on ipc, its IP address over TCP): `rate` frames a second, up to
`burst` at once. A frame over the limit is refused before it is decoded, which costs a dictionary
lookup, so a flood costs the intake little more than reading it off the socket. A refused frame is not
stored, not counted as received from its emitter and not written to rejects/: the emitter sees the gap,
sends it again and, while it stays over the limit, spills it to its spool after `confirm_timeout_s`.
So a legitimate burst above the limit is delayed, not lost; spool files are taken at the WAL's pace
and are not rate-limited (their size is bounded by the writer's disk, not by the intake).
"""

from __future__ import annotations


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class RateLimits:
    """Fed the time (monotonic seconds), so that it is tested with explicit timestamps."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, sender: str, now: float) -> bool:
        """Take one frame from `sender`'s bucket; False when it is empty (or the limit is off: True)."""
        if self.rate <= 0:
            return True
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = self._buckets[sender] = _Bucket(self.burst, now)
        elif now > bucket.at:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def forget_full(self, now: float) -> None:
        """Drop the buckets that have filled up again: a new one starts full, so nothing changes."""
        self._buckets = {
            s: b for s, b in self._buckets.items() if b.tokens + (now - b.at) * self.rate < self.burst
        }

    def __len__(self) -> int:
        return len(self._buckets)
