"""A per-sender rate limit on the socket intake: no sender can take the intake from the others.

Two token buckets per sender (its uid on ipc, its key over CURVE, its IP address over plain TCP):
`rate` frames a second, up to `burst` at once, and `byte_rate` bytes a second, up to `byte_burst` at
once (a few large frames fill the WAL as fast as many small ones). A frame over the limit is refused
before it is decoded, which costs a dictionary lookup, so a flood costs the intake little more than
reading it off the socket. A refused frame is not
stored, not counted as received from its emitter and not written to rejects/: the emitter sees the gap,
sends it again and, while it stays over the limit, spills it to its spool after `confirm_timeout_s`.
So a legitimate burst above the limit is delayed, not lost; spool files are taken at the WAL's pace
and are not rate-limited (their size is bounded by the writer's disk, not by the intake).
"""

from __future__ import annotations


class _Bucket:
    __slots__ = ("at", "bytes", "tokens")

    def __init__(self, tokens: float, byte_tokens: float, at: float) -> None:
        self.tokens = tokens
        self.bytes = byte_tokens
        self.at = at


class RateLimits:
    """Fed the time (monotonic seconds), so that it is tested with explicit timestamps. A rate of 0
    turns its limit off."""

    def __init__(self, rate: float, burst: int, byte_rate: float = 0.0, byte_burst: int = 1) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.byte_rate = byte_rate
        self.byte_burst = float(byte_burst)
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, sender: str, now: float, size: int = 0) -> bool:
        """Take one frame of `size` bytes from `sender`'s buckets; False when either has too little."""
        return self.admit_all(sender, now, 1, size)

    def admit_all(self, sender: str, now: float, count: int, size: int) -> bool:
        """Take `count` frames of `size` bytes in all from `sender`'s buckets when both hold enough for
        all of them (then each one alone would pass too, in any order: a batch costs one call, not one
        per frame); False, taking nothing, when either has too little."""
        if self.rate <= 0 and self.byte_rate <= 0:
            return True
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = self._buckets[sender] = _Bucket(self.burst, self.byte_burst, now)
        elif now > bucket.at:
            elapsed = now - bucket.at
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.bytes = min(self.byte_burst, bucket.bytes + elapsed * self.byte_rate)
            bucket.at = now
        counts = self.rate > 0
        weighs = self.byte_rate > 0
        if (counts and bucket.tokens < count) or (weighs and bucket.bytes < size):
            return False
        bucket.tokens -= count if counts else 0
        bucket.bytes -= size if weighs else 0
        return True

    def forget_full(self, now: float) -> None:
        """Drop the buckets that have filled up again: a new one starts full, so nothing changes."""
        self._buckets = {s: b for s, b in self._buckets.items() if not self._full(b, now)}

    def _full(self, bucket: _Bucket, now: float) -> bool:
        elapsed = now - bucket.at
        counted = self.rate <= 0 or bucket.tokens + elapsed * self.rate >= self.burst
        weighed = self.byte_rate <= 0 or bucket.bytes + elapsed * self.byte_rate >= self.byte_burst
        return counted and weighed

    def __len__(self) -> int:
        return len(self._buckets)
