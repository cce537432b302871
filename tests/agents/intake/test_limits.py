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


def test_a_sender_of_large_frames_is_held_to_its_bytes_whatever_its_frame_count() -> None:
    """100 frames of 1 MiB fit the frame budget but not 4 MiB of bytes: 4 pass, then 1 a second; the
    frame limit still holds a sender of small frames, and a byte rate of 0 is no byte limit."""
    mib = 1024 * 1024
    limits = RateLimits(rate=1000, burst=1000, byte_rate=mib, byte_burst=4 * mib)
    assert sum(limits.admit("uid 1002", now=0.0, size=mib) for _ in range(100)) == 4
    assert sum(limits.admit("uid 1002", now=1.0, size=mib) for _ in range(100)) == 1
    assert sum(limits.admit("uid 1001", now=1.0, size=100) for _ in range(2000)) == 1000
    unweighed = RateLimits(rate=1000, burst=1000)
    assert sum(unweighed.admit("uid 1002", now=0.0, size=mib) for _ in range(100)) == 100


def test_a_bucket_is_forgotten_only_once_both_its_budgets_filled_up_again() -> None:
    limits = RateLimits(rate=1000, burst=1000, byte_rate=100, byte_burst=1000)
    limits.admit("uid 1002", now=0.0, size=1000)
    limits.forget_full(now=2.0)  # its frame budget is full again, its bytes are not
    assert len(limits) == 1
    limits.forget_full(now=11.0)
    assert len(limits) == 0


def test_a_message_is_taken_whole_only_when_both_buckets_hold_all_of_it() -> None:
    """admit_all takes every frame or none: a message the buckets cannot hold takes nothing from them,
    so its frames can still be taken one by one as far as the buckets go."""
    limits = RateLimits(rate=100, burst=10, byte_rate=1000, byte_burst=1000)
    assert limits.admit_all("uid 1002", now=0.0, count=4, size=400)
    assert not limits.admit_all("uid 1002", now=0.0, count=7, size=70)  # 6 frames left
    assert not limits.admit_all("uid 1002", now=0.0, count=2, size=601)  # 600 bytes left
    assert sum(limits.admit("uid 1002", now=0.0, size=10) for _ in range(10)) == 6
