"""The one backoff rule, and the delays between one batch's attempts, fed explicit outcomes."""

from __future__ import annotations

from auditship.agents.backoff import Backoff, compute_backoff


def test_backoff_doubles_from_its_base_up_to_its_cap() -> None:
    """Without jitter the ceiling itself: 0.2, 0.4, 0.8... and never above the cap."""
    assert [compute_backoff(n, 0.2, 1.0, jitter=False) for n in range(1, 6)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_attempts_that_fail_without_progress_wait_longer_each_time() -> None:
    """A destination that takes nothing is asked less and less often."""
    backoff = Backoff(0.2, 30.0, jitter=False)
    assert [backoff.failed() for _ in range(4)] == [0.2, 0.4, 0.8, 1.6]


def test_an_attempt_that_delivered_part_of_the_batch_starts_the_backoff_afresh() -> None:
    """Throttled one request in four, every attempt takes the other three: the waits do not grow."""
    backoff = Backoff(0.2, 30.0, jitter=False)
    backoff.failed()
    backoff.failed()
    assert [backoff.failed(progressed=True) for _ in range(5)] == [0.2] * 5
    assert backoff.failed() == 0.4


def test_retry_after_is_the_least_wait_even_after_progress() -> None:
    """A destination that said when to come back is not asked sooner, progress or not."""
    backoff = Backoff(0.2, 30.0, jitter=False)
    assert backoff.failed(progressed=True, retry_after_s=2.0) == 2.0
    assert backoff.failed(retry_after_s=0.1) == 0.4


def test_a_delivered_batch_starts_the_next_batchs_backoff_from_the_base() -> None:
    """Attempts count per batch: the next batch's first failure waits the base again."""
    backoff = Backoff(0.2, 30.0, jitter=False)
    for _ in range(5):
        backoff.failed()
    backoff.succeeded()
    assert backoff.failed() == 0.2
