"""The one backoff rule: capped exponential with full jitter (as AWS's architecture blog describes)."""

from __future__ import annotations

import random


def compute_backoff(attempt: int, base: float, cap: float, *, jitter: bool = True) -> float:
    """Seconds to wait before retry number `attempt` (1-based)."""
    ceiling = min(cap, base * 2 ** min(attempt - 1, 32))
    return random.uniform(0, ceiling) if jitter else ceiling  # noqa: S311 - jitter, not cryptography


class Backoff:
    """The delays between one batch's attempts: `compute_backoff` over the attempts so far, never sooner
    than the destination asked (Retry-After), and from the start again once an attempt made progress: a
    destination that throttles one request in four takes the other three, so it is not down, and
    waiting longer at each throttled request would only slow a backlog's drain."""

    def __init__(self, base: float, cap: float, *, jitter: bool = True) -> None:
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self.attempt = 0

    def failed(self, *, progressed: bool = False, retry_after_s: float = 0.0) -> float:
        """Seconds to wait after a failed attempt; `progressed` when it delivered part of the batch."""
        self.attempt = 1 if progressed else self.attempt + 1
        return max(compute_backoff(self.attempt, self.base, self.cap, jitter=self.jitter), retry_after_s)

    def succeeded(self) -> None:
        self.attempt = 0
