"""AuditLogger turns the seed's calls into stamped events, filters as configured and counts the drops."""

import asyncio
import socket
import sys
import threading
import types
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from shipper import dispatch
from shipper.config import AuditConfig, AuditContext
from shipper.correlation import correlation, current
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity
from shipper.http_status import classify_status
from shipper.logger import AuditLogger

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def make_logger(
    config: AuditConfig | None = None, context: AuditContext | None = None
) -> tuple[AuditLogger, list[AuditEvent]]:
    sent: list[AuditEvent] = []
    context = context or AuditContext(
        service_name="user-service",
        service_version="2.1.0",
        environment="production",
        node_id="us-east-1-node-03",
        compliance_requirements=["SOX", "GDPR"],
    )
    return AuditLogger(config or AuditConfig(), context, emit=sent.append), sent


# --- the seed's examples ---------------------------------------------------------------------------


def test_the_quick_start_login_is_sent_with_the_service_context():
    """log_auth_event(USER_LOGIN, user_id=..., source_ip=...) sends one successful INFO login."""
    audit_logger, sent = make_logger()
    event = run(
        audit_logger.log_auth_event(AuditEventType.USER_LOGIN, user_id="user123", source_ip="192.168.1.100")
    )
    assert sent == [event]
    assert event is not None
    assert event.event_type is AuditEventType.USER_LOGIN
    assert (event.user_id, event.source_ip) == ("user123", "192.168.1.100")
    assert event.outcome is AuditOutcome.SUCCESS
    assert event.severity is AuditSeverity.INFO
    assert event.message == "user_login success"
    assert event.service_name == "user-service"
    assert event.service_version == "2.1.0"
    assert event.environment == "production"
    assert event.node_id == "us-east-1-node-03"
    assert event.compliance == ["SOX", "GDPR"]


def test_an_auth_event_keeps_its_outcome_and_details():
    """The seed's auth example with an explicit outcome and details."""
    audit_logger, _ = make_logger()
    event = run(
        audit_logger.log_auth_event(
            AuditEventType.USER_LOGIN,
            user_id="user123",
            outcome=AuditOutcome.SUCCESS,
            source_ip="192.168.1.100",
            details={"method": "password", "mfa": True},
        )
    )
    assert event is not None
    assert event.details == {"method": "password", "mfa": True}


def test_a_failed_login_is_more_severe_than_a_successful_one():
    """Without a severity, FAILURE is MEDIUM; an explicit severity and message are kept."""
    audit_logger, _ = make_logger()
    failed = run(
        audit_logger.log_auth_event(
            AuditEventType.AUTH_FAILURE,
            user_id="mallory",
            outcome=AuditOutcome.FAILURE,
            user_agent="curl/8.0",
            session_id="sess-9",
        )
    )
    explicit = run(
        audit_logger.log_auth_event(
            AuditEventType.AUTH_FAILURE,
            outcome=AuditOutcome.FAILURE,
            message="bad password",
            severity=AuditSeverity.HIGH,
        )
    )
    assert failed is not None and explicit is not None
    assert failed.severity is AuditSeverity.MEDIUM
    assert (failed.user_agent, failed.session_id) == ("curl/8.0", "sess-9")
    assert explicit.severity is AuditSeverity.HIGH
    assert explicit.message == "bad password"


def test_the_seeds_api_event_records_the_request():
    """log_api_event with the seed's keywords makes a successful API_REQUEST with every measure."""
    audit_logger, sent = make_logger()
    event = run(
        audit_logger.log_api_event(
            method="POST",
            endpoint="/api/users",
            status_code=201,
            user_id="user123",
            duration_ms=45.2,
            request_size=1024,
            response_size=512,
        )
    )
    assert sent == [event]
    assert event is not None
    assert event.event_type is AuditEventType.API_REQUEST
    assert (event.method, event.endpoint, event.status_code) == ("POST", "/api/users", 201)
    assert (event.duration_ms, event.request_size, event.response_size) == (45.2, 1024, 512)
    assert event.user_id == "user123"
    assert event.action == "POST /api/users"
    assert event.message == "POST /api/users 201"
    assert (event.outcome, event.severity) == (AuditOutcome.SUCCESS, AuditSeverity.INFO)


@pytest.mark.parametrize(
    ("status", "outcome", "severity"),
    [
        (101, AuditOutcome.SUCCESS, AuditSeverity.INFO),
        (200, AuditOutcome.SUCCESS, AuditSeverity.INFO),
        (304, AuditOutcome.SUCCESS, AuditSeverity.INFO),
        (400, AuditOutcome.FAILURE, AuditSeverity.LOW),
        (401, AuditOutcome.FAILURE, AuditSeverity.MEDIUM),
        (403, AuditOutcome.FAILURE, AuditSeverity.MEDIUM),
        (404, AuditOutcome.FAILURE, AuditSeverity.LOW),
        (429, AuditOutcome.FAILURE, AuditSeverity.LOW),
        (500, AuditOutcome.ERROR, AuditSeverity.HIGH),
        (503, AuditOutcome.ERROR, AuditSeverity.HIGH),
        (0, AuditOutcome.UNKNOWN, AuditSeverity.LOW),
        (600, AuditOutcome.UNKNOWN, AuditSeverity.LOW),
    ],
)
def test_api_outcome_and_severity_follow_the_status_code(status, outcome, severity):
    """2xx/3xx succeed, 4xx fail (refusals MEDIUM), 5xx are HIGH errors, nonsense is UNKNOWN."""
    assert classify_status(status) == (outcome, severity)
    audit_logger, _ = make_logger()
    event = run(audit_logger.log_api_event("GET", "/x", status, source_ip="10.0.0.1", details={"q": 1}))
    assert event is not None
    assert (event.outcome, event.severity) == (outcome, severity)
    assert event.source_ip == "10.0.0.1"
    assert event.details == {"q": 1}


def test_the_seeds_data_update_records_resource_and_changes():
    """log_data_event(DATA_UPDATE, resource_type=..., ...) keeps the resource, action and changes."""
    audit_logger, _ = make_logger()
    event = run(
        audit_logger.log_data_event(
            AuditEventType.DATA_UPDATE,
            resource_type="user",
            resource_id="123",
            action="update_profile",
            user_id="user123",
            changes={"email": "new@example.com"},
        )
    )
    assert event is not None
    assert event.event_type is AuditEventType.DATA_UPDATE
    assert (event.resource_type, event.resource_id, event.action) == ("user", "123", "update_profile")
    assert event.user_id == "user123"
    assert event.changes == {"email": "new@example.com"}
    assert event.message == "update_profile user/123"
    assert (event.outcome, event.severity) == (AuditOutcome.SUCCESS, AuditSeverity.INFO)


def test_the_seeds_sox_and_hipaa_examples_log():
    """A financial TRANSACTION and a patient-record DATA_ACCESS are both logged as given."""
    audit_logger, sent = make_logger()
    run(
        audit_logger.log_data_event(
            AuditEventType.TRANSACTION,
            resource_type="financial_record",
            resource_id="txn-789",
            action="create",
            user_id="accountant123",
            changes={"amount": 1000.00, "account": "revenue"},
        )
    )
    run(
        audit_logger.log_data_event(
            AuditEventType.DATA_ACCESS,
            resource_type="patient_record",
            resource_id="patient-456",
            action="view",
            user_id="doctor123",
            changes={"fields_accessed": ["diagnosis", "treatment"]},
        )
    )
    assert [e.event_type for e in sent] == [AuditEventType.TRANSACTION, AuditEventType.DATA_ACCESS]
    assert sent[0].changes == {"amount": 1000.00, "account": "revenue"}
    assert sent[1].changes == {"fields_accessed": ["diagnosis", "treatment"]}


def test_a_data_event_keeps_sensitive_values_apart_and_its_outcome():
    """sensitive= goes to the field the agent encrypts; a failed write is MEDIUM."""
    audit_logger, _ = make_logger()
    event = run(
        audit_logger.log_data_event(
            AuditEventType.DATA_EXPORT,
            "customer",
            "c-1",
            "export",
            details={"rows": 10},
            sensitive={"ssn": "123-45-6789"},
            outcome=AuditOutcome.FAILURE,
        )
    )
    assert event is not None
    assert event.sensitive == {"ssn": "123-45-6789"}
    assert event.details == {"rows": 10}
    assert (event.outcome, event.severity) == (AuditOutcome.FAILURE, AuditSeverity.MEDIUM)


def test_the_seeds_security_event_takes_its_message_positionally():
    """log_security_event(type, message, severity=..., ...) is a refused attempt by default."""
    audit_logger, _ = make_logger()
    event = run(
        audit_logger.log_security_event(
            AuditEventType.SECURITY_VIOLATION,
            "Multiple failed login attempts",
            severity=AuditSeverity.HIGH,
            source_ip="192.168.1.200",
            details={"attempts": 5, "timeframe": "5min"},
        )
    )
    assert event is not None
    assert event.message == "Multiple failed login attempts"
    assert event.severity is AuditSeverity.HIGH
    assert event.outcome is AuditOutcome.FAILURE
    assert event.source_ip == "192.168.1.200"
    assert event.details == {"attempts": 5, "timeframe": "5min"}


def test_a_security_event_defaults_to_high_and_takes_an_outcome():
    """Without a severity a security finding is HIGH; an attempt that got through says SUCCESS."""
    audit_logger, _ = make_logger()
    event = run(
        audit_logger.log_security_event(
            AuditEventType.SUSPICIOUS_ACTIVITY, "odd access", user_id="u1", outcome=AuditOutcome.SUCCESS
        )
    )
    assert event is not None
    assert (event.severity, event.outcome, event.user_id) == (AuditSeverity.HIGH, AuditOutcome.SUCCESS, "u1")


def test_the_seeds_privacy_system_event_logs():
    """log_system_event(type, message, details=...) is an INFO success of the service itself."""
    audit_logger, _ = make_logger()
    event = run(
        audit_logger.log_system_event(
            AuditEventType.PRIVACY_ACCESS,
            "Data subject access request processed",
            details={"subject_id": "user123", "data_exported": True},
        )
    )
    assert event is not None
    assert event.event_type is AuditEventType.PRIVACY_ACCESS
    assert event.message == "Data subject access request processed"
    assert event.details == {"subject_id": "user123", "data_exported": True}
    assert (event.severity, event.outcome) == (AuditSeverity.INFO, AuditOutcome.SUCCESS)


def test_the_seeds_custom_event_is_logged_as_built():
    """A builder from the logger makes a stamped event; log_event sends that same event."""
    audit_logger, sent = make_logger()
    builder = audit_logger.create_event_builder()
    event = (
        builder.event_type(AuditEventType.BUSINESS_LOGIC)
        .message("Payment processed successfully")
        .user("customer123")
        .action("process_payment")
        .severity(AuditSeverity.MEDIUM)
        .outcome(AuditOutcome.SUCCESS)
        .resource("payment", "pay-789")
        .performance(duration_ms=250.0)
        .detail("amount", 99.99)
        .detail("currency", "USD")
        .sensitive_detail("card_number", "****-****-****-1234")
        .build()
    )
    assert run(audit_logger.log_event(event)) is event
    assert sent == [event]
    assert event.service_name == "user-service"
    assert event.compliance == ["SOX", "GDPR"]


def test_log_event_fills_what_a_bare_event_leaves_unset():
    """An AuditEvent made by hand gets the service, compliance tags and correlation ids, but keeps
    the ids and tags it already has."""
    audit_logger, _ = make_logger()
    event = AuditEvent(
        event_type=AuditEventType.WORKFLOW, request_id="own-request", compliance=["HIPAA", "SOX"]
    )
    with correlation(correlation_id="corr-1", request_id="ctx-request"):
        logged = run(audit_logger.log_event(event))
    assert logged is event
    assert event.service_name == "user-service"
    assert event.node_id == "us-east-1-node-03"
    assert event.compliance == ["SOX", "GDPR", "HIPAA"]
    assert event.correlation_id == "corr-1"
    assert event.request_id == "own-request"


def test_node_id_defaults_to_the_host_name_on_events():
    """A context without node_id stamps the host name."""
    audit_logger, _ = make_logger(context=AuditContext(service_name="svc"))
    event = run(audit_logger.log_system_event(AuditEventType.SYSTEM_STARTUP, "started"))
    assert event is not None
    assert event.node_id == socket.gethostname()
    assert event.compliance == []


def test_details_passed_in_are_copied():
    """Changing the caller's dict after logging does not change the logged event."""
    audit_logger, _ = make_logger()
    details = {"k": 1}
    event = run(
        audit_logger.log_system_event(AuditEventType.CONFIGURATION_CHANGE, "changed", details=details)
    )
    details["k"] = 2
    assert event is not None
    assert event.details == {"k": 1}


# --- filtering ----------------------------------------------------------------------------------------


def test_events_below_min_severity_are_dropped_and_counted():
    """With min_severity MEDIUM, INFO and LOW events are not sent, return None and are counted."""
    config = AuditConfig()
    config.min_severity = AuditSeverity.MEDIUM
    audit_logger, sent = make_logger(config)

    assert run(audit_logger.log_auth_event(AuditEventType.USER_LOGIN, user_id="u")) is None
    assert run(audit_logger.log_api_event("GET", "/missing", 404)) is None
    kept_refusal = run(audit_logger.log_api_event("GET", "/admin", 403))
    kept_error = run(audit_logger.log_api_event("GET", "/boom", 500))
    kept_security = run(audit_logger.log_security_event(AuditEventType.RATE_LIMIT_EXCEEDED, "too many"))

    assert sent == [kept_refusal, kept_error, kept_security]
    assert audit_logger.filtered == 2


def test_excluded_event_types_are_dropped_and_counted():
    """The seed's excluded HEARTBEAT is not sent from any method, including log_event."""
    config = AuditConfig()
    config.excluded_event_types = [AuditEventType.HEARTBEAT]
    audit_logger, sent = make_logger(config)

    assert run(audit_logger.log_system_event(AuditEventType.HEARTBEAT, "alive")) is None
    built = audit_logger.create_event_builder().event_type(AuditEventType.HEARTBEAT).build()
    assert run(audit_logger.log_event(built)) is None
    kept = run(audit_logger.log_system_event(AuditEventType.SYSTEM_STARTUP, "started"))

    assert sent == [kept]
    assert audit_logger.filtered == 2


def test_log_event_applies_min_severity():
    """A prepared event below the minimum is dropped like any other."""
    audit_logger, sent = make_logger(AuditConfig(min_severity=AuditSeverity.CRITICAL))
    event = AuditEvent(event_type=AuditEventType.WORKFLOW, severity=AuditSeverity.HIGH)
    assert run(audit_logger.log_event(event)) is None
    assert sent == []
    assert audit_logger.filtered == 1


def test_nothing_is_filtered_by_default():
    """The default config lets every severity and type through and counts no drops."""
    audit_logger, sent = make_logger()
    for event_type in (AuditEventType.HEARTBEAT, AuditEventType.DATA_READ):
        run(audit_logger.log_system_event(event_type, "m"))
    assert len(sent) == 2
    assert audit_logger.filtered == 0


def test_filters_are_fixed_when_the_logger_is_built():
    """Changing the config afterwards does not change an existing logger's filters."""
    config = AuditConfig()
    audit_logger, sent = make_logger(config)
    config.min_severity = AuditSeverity.CRITICAL
    config.excluded_event_types.append(AuditEventType.HEARTBEAT)
    run(audit_logger.log_system_event(AuditEventType.HEARTBEAT, "alive"))
    assert len(sent) == 1


def test_filter_settings_given_as_strings_work():
    """Untyped configuration ("medium", "heartbeat") means the same as the enum members."""
    config = AuditConfig(min_severity="medium", excluded_event_types=["heartbeat"])  # type: ignore[arg-type, list-item]
    audit_logger, sent = make_logger(config)
    run(audit_logger.log_system_event(AuditEventType.HEARTBEAT, "alive", severity=AuditSeverity.HIGH))
    run(audit_logger.log_system_event(AuditEventType.SYSTEM_STARTUP, "started"))
    assert sent == []
    assert audit_logger.filtered == 2


def test_a_bad_filter_setting_fails_when_the_logger_is_built():
    """A misspelt severity or event type is an error that names the setting, not a silent no-filter."""
    with pytest.raises(ValueError, match=r"min_severity: 'hgh'"):
        make_logger(AuditConfig(min_severity="hgh"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"excluded_event_types: 'hartbeat'"):
        make_logger(AuditConfig(excluded_event_types=["hartbeat"]))  # type: ignore[list-item]


def test_drops_from_many_threads_are_all_counted():
    """The drop count is exact when threads log concurrently."""
    audit_logger, _ = make_logger(AuditConfig(excluded_event_types=[AuditEventType.HEARTBEAT]))

    def log_many() -> None:
        for _ in range(2000):
            asyncio.run(audit_logger.log_system_event(AuditEventType.HEARTBEAT, "alive"))

    threads = [threading.Thread(target=log_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert audit_logger.filtered == 8000


# --- correlation ----------------------------------------------------------------------------------------


def test_events_carry_the_correlation_ids_in_effect():
    """Inside correlation(...) every method stamps all four ids; outside, none."""
    audit_logger, _ = make_logger()
    with correlation(correlation_id="corr-1", request_id="req-1", trace_id="trace-1", span_id="span-1"):
        inside = run(audit_logger.log_api_event("GET", "/", 200))
    outside = run(audit_logger.log_api_event("GET", "/", 200))
    assert inside is not None and outside is not None
    assert (inside.correlation_id, inside.request_id, inside.trace_id, inside.span_id) == (
        "corr-1",
        "req-1",
        "trace-1",
        "span-1",
    )
    assert (outside.correlation_id, outside.request_id, outside.trace_id, outside.span_id) == (None,) * 4


def test_a_nested_block_adds_ids_and_the_outer_ones_return_after_it():
    """A nested correlation() keeps the outer ids it does not set and restores them on exit."""
    with correlation(correlation_id="corr-1", span_id="span-outer"):
        with correlation(span_id="span-inner") as inner:
            assert inner == current()
            assert (inner.correlation_id, inner.span_id) == ("corr-1", "span-inner")
        assert current().span_id == "span-outer"
    assert current().correlation_id is None


def test_ids_are_restored_when_the_block_raises():
    """An exception leaving the block does not leave its ids behind."""
    with pytest.raises(RuntimeError), correlation(correlation_id="corr-1"):
        raise RuntimeError("boom")
    assert current().correlation_id is None


def test_correlation_ids_follow_asyncio_tasks_without_leaking_between_them():
    """Tasks inherit the ids in effect when they start; ids a task sets stay in that task."""
    audit_logger, sent = make_logger()

    async def handle(request_id: str) -> None:
        with correlation(request_id=request_id):
            await asyncio.sleep(0)  # let the other task run in between
            await audit_logger.log_api_event("GET", f"/{request_id}", 200)

    async def main() -> None:
        with correlation(correlation_id="batch-7"):
            await asyncio.gather(handle("r1"), handle("r2"))
            assert current().request_id is None
            await audit_logger.log_system_event(AuditEventType.WORKFLOW, "batch done")

    run(main())
    by_endpoint = {event.endpoint: event for event in sent}
    assert by_endpoint["/r1"].request_id == "r1"
    assert by_endpoint["/r2"].request_id == "r2"
    assert {event.correlation_id for event in sent} == {"batch-7"}
    assert by_endpoint[None].request_id is None


# --- where events go ---------------------------------------------------------------------------------


def test_without_emit_the_logger_uses_the_emitter_resolved_at_first_use(monkeypatch):
    """A logger made without emit= sends through shipper.emitter.emit, looked up when first needed."""
    received: list[AuditEvent] = []
    fake_emitter = types.ModuleType("shipper.emitter")
    fake_emitter.emit = received.append  # type: ignore[attr-defined]
    monkeypatch.setattr(dispatch, "_emitter_emit", None)
    audit_logger = AuditLogger(AuditConfig(), AuditContext(service_name="svc"))
    monkeypatch.setitem(sys.modules, "shipper.emitter", fake_emitter)

    event = run(audit_logger.log_system_event(AuditEventType.SYSTEM_STARTUP, "started"))
    assert received == [event]
