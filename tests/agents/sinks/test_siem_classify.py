"""What an HTTP status and a Retry-After header mean for a batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from auditship.agents.sinks.base import Delivery
from auditship.agents.sinks.siem.classify import MAX_RETRY_AFTER_S, outcome_of_status, retry_after_s


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Delivery.DELIVERED),
        (201, Delivery.DELIVERED),
        (408, Delivery.ERRORED),
        (429, Delivery.ERRORED),
        (500, Delivery.ERRORED),
        (503, Delivery.ERRORED),
        (301, Delivery.REJECTED),
        (400, Delivery.REJECTED),
        (401, Delivery.REJECTED),
        (403, Delivery.REJECTED),
        (404, Delivery.REJECTED),
        (413, Delivery.REJECTED),
    ],
)
def test_statuses_that_retrying_can_fix_are_retried_and_the_others_refused(
    status: int, outcome: Delivery
) -> None:
    assert outcome_of_status(status) is outcome


def answer(retry_after: str | None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(429, headers=headers)


def test_retry_after_is_read_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_s(answer("12")) == 12.0
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 55 < retry_after_s(answer(in_a_minute)) <= 60


def test_a_missing_unreadable_past_or_huge_retry_after_is_bounded() -> None:
    assert retry_after_s(answer(None)) == 0.0
    assert retry_after_s(answer("soon")) == 0.0
    assert retry_after_s(answer("Wed, 21 Oct 2015 07:28:00 GMT")) == 0.0
    assert retry_after_s(answer("86400")) == MAX_RETRY_AFTER_S
