"""What an HTTP answer means for the events its request carried: one `Reply` per request.

The outcomes are the runner's (base.Delivery):

    DELIVERED  2xx; per format also an item the destination already has (a bulk `create` answering 409)
    ERRORED    connect errors, timeouts, 408, 429 and 5xx (HEC's "server is busy" and "unhealthy" are
               503s): the destination may take the same bytes later, so they stay in the WAL and the
               runner backs off, for at least as long as a Retry-After header asks
    REJECTED   every other answer (a bad token, a malformed body, a wrong index or URL): sending the
               same bytes again cannot help, so the events go to dead letters with the response
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import httpx
import msgspec

from auditship.agents.masking import url_without_secrets
from auditship.agents.sinks.base import Delivery

BATCH_ID_HEADER = "X-Auditship-Batch-Id"
MAX_RETRY_AFTER_S = 300.0
"""A Retry-After beyond this is taken as this: a destination's typo must not park the sink for a day."""
_EXCERPT_CHARS = 300


class Reply(msgspec.Struct):
    """The outcome of one request for each event it carried: `outcome` for all of them, except those
    named in `items` (by their index in the request), which have their own."""

    outcome: Delivery
    reason: str = ""
    items: dict[int, tuple[Delivery, str]] = msgspec.field(default_factory=dict)
    retry_after_s: float = 0.0

    def of(self, index: int) -> tuple[Delivery, str]:
        return self.items.get(index, (self.outcome, self.reason))


def outcome_of_status(status: int) -> Delivery:
    if 200 <= status < 300:
        return Delivery.DELIVERED
    if status in (408, 429) or status >= 500:
        return Delivery.ERRORED
    return Delivery.REJECTED


def reply_to(response: httpx.Response) -> Reply:
    """The reply that the status alone decides, with the response in the reason."""
    outcome = outcome_of_status(response.status_code)
    if outcome is Delivery.DELIVERED:
        return Reply(outcome)
    return Reply(outcome, describe(response), retry_after_s=retry_after_s(response))


def transport_failure(exc: httpx.HTTPError) -> Reply:
    """No usable answer (refused, reset, timed out, TLS failed, a body that does not decode): the
    events wait in the WAL."""
    try:
        where = f"{url_without_secrets(str(exc.request.url))}: "
    except RuntimeError:  # httpx raised it before the request was made
        where = ""
    return Reply(Delivery.ERRORED, f"{where}{type(exc).__name__}: {exc or 'no details'}")


def describe(response: httpx.Response) -> str:
    """`HTTP 401 from <url>: <the start of the body>`: what a dead letter keeps of the response."""
    body = response.text.strip().replace("\n", " ")
    if len(body) > _EXCERPT_CHARS:
        body = body[:_EXCERPT_CHARS] + "..."
    where = url_without_secrets(str(response.request.url))
    return f"HTTP {response.status_code} from {where}: {body or '(empty body)'}"


def retry_after_s(response: httpx.Response) -> float:
    """Retry-After in seconds (it may be a number or an HTTP date); 0 when absent or unreadable."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
