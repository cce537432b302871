"""The one backoff rule: capped exponential with full jitter (as AWS's architecture blog describes)."""

from __future__ import annotations

import random


def compute_backoff(attempt: int, base: float, cap: float, *, jitter: bool = True) -> float:
    """Seconds to wait before retry number `attempt` (1-based)."""
    ceiling = min(cap, base * 2 ** min(attempt - 1, 32))
    return random.uniform(0, ceiling) if jitter else ceiling  # noqa: S311 - jitter, not cryptography
