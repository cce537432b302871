"""AuditRecorder decides what is sent: the request event unless sampled out, and the events derived from
it, never sampled. Fine-grained, with the events collected in a list instead of sent."""

from __future__ import annotations

import random
from typing import Any

import pytest

from shipper.config import AuditContext
from shipper.correlation import CorrelationIds
from shipper.event import AuditEvent, AuditOutcome, AuditSeverity, new_event_id
from shipper.middleware.anomalies import Signal
from shipper.middleware.config import AuditMiddlewareConfig
from shipper.middleware.recorder import AuditRecorder

IDS = CorrelationIds("corr-1", "corr-1", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def recorder(**options: Any) -> tuple[AuditRecorder, list[AuditEvent]]:
    sent: list[AuditEvent] = []
    context = AuditContext(service_name="orders", environment="prod", compliance_requirements=["SOX"])
    return AuditRecorder(AuditMiddlewareConfig(**options), context=context, emit=sent.append), sent


def handle(
    recorder: AuditRecorder, status: int = 200, signals: tuple[Signal, ...] = (), **fields: Any
) -> None:
    """What the protocol modules do with a request: skip it, or build its event and record that."""
    event = request(recorder, status, **fields)
    assert event.duration_ms is not None
    if not recorder.skip(status, event.duration_ms, fields.get("error"), list(signals)):
        recorder.record(event, list(signals))


def request(recorder: AuditRecorder, status: int = 200, **fields: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "event_id": new_event_id(),
        "ids": IDS,
        "method": "GET",
        "endpoint": "/orders/{order_id}",
        "status_code": status,
        "error": None,
        "duration_ms": 12.0,
        "details": {"path": "/orders/7", "request_headers": {"accept": "*/*"}},
        "source_ip": "10.0.0.9",
        "user_agent": "curl/8",
        "user_id": "alice",
        "sensitive": {"request_body": "..."},
    }
    return recorder.request_event(**(values | fields))


def test_the_request_event_carries_the_service_the_ids_and_the_exchange() -> None:
    """Service fields, compliance tags, all four correlation ids, outcome and severity from the status."""
    audit, _ = recorder()
    event = request(audit, 404)
    assert (event.service_name, event.environment, event.compliance) == ("orders", "prod", ["SOX"])
    assert (event.correlation_id, event.request_id, event.trace_id, event.span_id) == IDS
    assert (event.outcome, event.severity) == (AuditOutcome.FAILURE, AuditSeverity.LOW)
    assert (event.action, event.message) == ("GET /orders/{order_id}", "GET /orders/{order_id} 404")


def test_request_events_have_the_given_id_and_share_no_container() -> None:
    """Each event is made from one template: a consumer that changes one event's lists or dicts must
    not change the next."""
    audit, _ = recorder()
    first = request(audit, event_id="0192f0c4a1b2c3d4e5f60718293a4b5c")
    assert first.event_id == "0192f0c4a1b2c3d4e5f60718293a4b5c"
    first.compliance.append("HIPAA")
    first.changes["x"] = 1
    second = request(audit)
    assert (second.compliance, second.changes) == (["SOX"], {})
    assert second.event_id != first.event_id


def test_an_exception_makes_an_error_whatever_the_status() -> None:
    """The exception's type is recorded, its message is not (it may hold data)."""
    audit, _ = recorder()
    event = request(audit, 200, error=KeyError("secret-key"))
    assert (event.outcome, event.severity) == (AuditOutcome.ERROR, AuditSeverity.HIGH)
    assert event.details["exception"] == "KeyError"
    assert "secret-key" not in str(event.details)


def test_derived_events_share_the_requests_facts_but_not_its_headers_or_bodies() -> None:
    """A 401 adds AUTH_FAILURE: same ids, endpoint, client and user; a new event id; headers and bodies
    stay on the request event only."""
    audit, sent = recorder()
    handle(audit, 401)
    original, derived = sent
    assert derived.event_type == "auth_failure"
    assert derived.event_id != original.event_id
    for field in (
        "correlation_id",
        "trace_id",
        "endpoint",
        "status_code",
        "source_ip",
        "user_id",
        "service_name",
    ):
        assert getattr(derived, field) == getattr(original, field)
    assert derived.details == {"path": "/orders/7"}
    assert derived.sensitive == {}
    assert derived.message == "authentication failed: GET /orders/{order_id} 401 from 10.0.0.9"


def test_sampling_keeps_about_the_rate_and_counts_every_drop() -> None:
    """At 0.25, about a quarter of ordinary requests are sent; sent plus sampled out is all of them."""
    audit, sent = recorder(sample_rate=0.25)
    random.seed(5)
    for _ in range(2_000):
        handle(audit)
    stats = audit.stats
    assert 400 < len(sent) < 600
    assert stats.events == len(sent)
    assert stats.sampled_out == 2_000 - len(sent)
    assert stats.requests == 2_000


@pytest.mark.parametrize(
    ("status", "fields", "signals", "types"),
    [
        (401, {}, [], ["api_request", "auth_failure"]),
        (403, {}, [], ["api_request", "access_denied"]),
        (429, {}, [], ["api_request", "rate_limit_exceeded"]),
        (503, {}, [], ["api_request"]),
        (200, {"error": RuntimeError()}, [], ["api_request"]),
        (200, {"duration_ms": 5_000.0}, [], ["api_request", "api_response"]),
        (200, {}, [Signal("sql_injection", "' or '")], ["api_request", "suspicious_activity"]),
    ],
)
def test_sampling_never_drops_security_relevant_requests(
    status: int, fields: dict[str, Any], signals: list[Signal], types: list[str]
) -> None:
    """At rate 0, refusals, server errors, exceptions, slow and suspicious requests are all still sent."""
    audit, sent = recorder(sample_rate=0.0)
    handle(audit, status, tuple(signals), **fields)
    assert [event.event_type for event in sent] == types
    assert audit.stats.sampled_out == 0


def test_an_ordinary_request_at_rate_zero_is_counted_not_sent() -> None:
    """The drop is visible in the stats."""
    audit, sent = recorder(sample_rate=0.0)
    handle(audit, 200)
    assert sent == []
    assert (audit.stats.sampled_out, audit.stats.requests, audit.stats.events) == (1, 1, 0)


def test_the_third_auth_failure_from_an_address_is_also_suspicious() -> None:
    """With a threshold of 3, the third 401 from 10.0.0.9 adds an auth_failure_burst signal."""
    audit, sent = recorder(auth_failure_threshold=3)
    for _ in range(3):
        handle(audit, 401)
    [burst] = [event for event in sent if event.event_type == "suspicious_activity"]
    assert burst.action == "auth_failure_burst"
    assert burst.details["evidence"] == "3 authentication failures within 60 s"
    assert audit.stats.suspicious == 1


def test_without_anomaly_detection_auth_failures_are_not_tracked() -> None:
    """detect_anomalies False: no burst detector at all."""
    audit, sent = recorder(detect_anomalies=False, auth_failure_threshold=1)
    handle(audit, 401)
    assert audit.bursts is None
    assert [event.event_type for event in sent] == ["api_request", "auth_failure"]


@pytest.mark.parametrize(
    ("path", "excluded"),
    [("/health", True), ("/health/live", True), ("/healthz", False), ("/metrics", True), ("/api", False)],
)
def test_excluded_paths_cover_their_subtree_only(path: str, excluded: bool) -> None:
    """ "/health" excludes "/health/live" but not "/healthz"; each exclusion is counted."""
    audit, _ = recorder(exclude_paths=["/health/", "/metrics"])
    assert audit.excluded(path) is excluded
    assert audit.stats.excluded == int(excluded)


def test_a_resolver_that_raises_gives_no_user_and_is_counted() -> None:
    """resolve() shields the request from a broken resolver."""
    audit, _ = recorder()

    def broken(subject: object) -> str:
        raise RuntimeError("token service down")

    assert audit.resolve(broken, object()) is None
    assert audit.resolve(lambda subject: "bob", object()) == "bob"
    assert audit.stats.resolver_errors == 1


def test_a_middleware_takes_a_recorder_or_what_builds_one_not_both() -> None:
    """Giving a recorder and a config too is ambiguous: a ValueError naming the constructor."""
    from shipper.middleware.asgi import AuditMiddleware
    from shipper.middleware.grpc_server import AioAuditServerInterceptor, AuditServerInterceptor

    shared = AuditRecorder()
    with pytest.raises(ValueError, match=r"^AuditMiddleware: recorder: "):
        AuditMiddleware(object(), AuditMiddlewareConfig(), recorder=shared)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^AuditServerInterceptor: recorder: "):
        AuditServerInterceptor(emit=print, recorder=shared)
    with pytest.raises(ValueError, match=r"^AioAuditServerInterceptor: recorder: "):
        AioAuditServerInterceptor(context=AuditContext(service_name="x"), recorder=shared)
    assert AuditServerInterceptor(recorder=shared).recorder is shared
