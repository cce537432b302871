"""The per-sender rate limit, fed explicit timestamps."""

from __future__ import annotations

from auditship.agents.intake.limits import RateLimits


def test_a_sender_gets_its_burst_then_its_rate_and_another_sender_is_not_touched() -> None:
    limits = RateLimits(rate=100, burst=200)
    assert sum(limits.admit("uid 1002", now=0.0) for _ in range(1000)) == 200
    assert sum(limits.admit("uid 1002", now=1.0) for _ in range(1000)) == 100
    assert sum(limits.admit("uid 1001", now=1.0) for _ in range(150)) == 150


def test_a_rate_of_zero_is_no_limit() -> None:
    limits = RateLimits(rate=0, burst=1)
    assert all(limits.admit("peer 10.0.0.1", now=0.0) for _ in range(10_000))
    assert len(limits) == 0


def test_a_bucket_that_filled_up_again_is_forgotten() -> None:
    limits = RateLimits(rate=100, burst=200)
    for _ in range(200):
        limits.admit("uid 1002", now=0.0)
    limits.forget_full(now=0.5)
    assert len(limits) == 1
    limits.forget_full(now=2.0)
    assert len(limits) == 0
