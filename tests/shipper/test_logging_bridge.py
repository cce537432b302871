"""AuditHandler turns stdlib log records into audit events: unit tests with capture_events(), and the
records of an `audit` logger asserted where they arrive, at a real agent."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator

import pytest

from shipper.config import AuditContext
from shipper.correlation import correlation
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity
from shipper.logging_bridge import AuditHandler
from shipper.testing import capture_events


@pytest.fixture
def audit_log() -> Iterator[logging.Logger]:
    """A logger of its own, with no handlers of the root logger in the way."""
    log = logging.getLogger(f"audit.tests.{uuid.uuid4().hex}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)


CONTEXT = AuditContext(service_name="billing", environment="prod", compliance_requirements=["SOX"])


def test_a_record_becomes_an_event_its_extra_fields_setting_the_events_fields(
    audit_log: logging.Logger,
) -> None:
    """Known keys of extra= set event fields (converted: a string to its enum); the rest go to details;
    the message is formatted; the service context is stamped."""
    audit_log.addHandler(AuditHandler(context=CONTEXT))
    with capture_events() as events:
        audit_log.info(
            "refund %s issued",
            "r-1",
            extra={
                "event_type": "transaction",
                "user_id": "u-17",
                "resource_type": "order",
                "resource_id": "o-9",
                "outcome": "success",
                "amount": 12.5,
                "sensitive": {"iban": "DE89 3704"},
            },
        )
    [event] = events
    assert event.event_type is AuditEventType.TRANSACTION
    assert event.message == "refund r-1 issued"
    assert (event.user_id, event.resource_type, event.resource_id) == ("u-17", "order", "o-9")
    assert event.details == {"logger": audit_log.name, "amount": 12.5}
    assert event.sensitive == {"iban": "DE89 3704"}
    assert (event.service_name, event.environment, event.compliance) == ("billing", "prod", ["SOX"])


def test_the_level_decides_the_severity_unless_extra_does(audit_log: logging.Logger) -> None:
    """DEBUG and INFO: INFO; WARNING: MEDIUM; ERROR: HIGH; CRITICAL: CRITICAL; extra={"severity"} wins."""
    audit_log.addHandler(AuditHandler())
    with capture_events() as events:
        for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
            audit_log.log(level, "x")
        audit_log.error("x", extra={"severity": "low"})
    assert [event.severity for event in events] == [
        AuditSeverity.INFO,
        AuditSeverity.INFO,
        AuditSeverity.MEDIUM,
        AuditSeverity.HIGH,
        AuditSeverity.CRITICAL,
        AuditSeverity.LOW,
    ]


def test_without_an_event_type_the_handlers_default_is_used(audit_log: logging.Logger) -> None:
    """BUSINESS_LOGIC unless the handler is given another default."""
    audit_log.addHandler(AuditHandler(event_type=AuditEventType.CONFIGURATION_CHANGE))
    with capture_events() as events:
        audit_log.info("feature flag flipped")
    assert events[0].event_type is AuditEventType.CONFIGURATION_CHANGE


def test_a_logged_exception_is_an_error_with_its_type(audit_log: logging.Logger) -> None:
    """log.exception(): outcome ERROR, the exception's type in details."""
    audit_log.addHandler(AuditHandler())
    with capture_events() as events:
        try:
            raise KeyError("missing")
        except KeyError:
            audit_log.exception("lookup failed")
    [event] = events
    assert event.outcome is AuditOutcome.ERROR
    assert event.details["exception"] == "KeyError"


def test_the_correlation_ids_in_effect_are_stamped_unless_extra_sets_them(audit_log: logging.Logger) -> None:
    """Inside a correlation() block (as the middleware sets per request) records carry its ids."""
    audit_log.addHandler(AuditHandler())
    with capture_events() as events, correlation(correlation_id="c-1", request_id="r-1"):
        audit_log.info("inside")
        audit_log.info("explicit", extra={"correlation_id": "c-2"})
    assert [(e.correlation_id, e.request_id) for e in events] == [("c-1", "r-1"), ("c-2", "r-1")]


def test_values_that_are_not_plain_data_are_logged_as_their_repr(audit_log: logging.Logger) -> None:
    """An object in extra= cannot stop the event: it is logged as repr()."""

    class Order:
        def __repr__(self) -> str:
            return "<Order o-9>"

    audit_log.addHandler(AuditHandler())
    with capture_events() as events:
        audit_log.info("x", extra={"order": Order()})
    assert events[0].details["order"] == "<Order o-9>"


def test_an_unusable_record_goes_to_handle_error_and_is_not_raised(
    audit_log: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown event type is reported on stderr as any logging failure is; the caller goes on."""
    audit_log.addHandler(AuditHandler())
    with capture_events() as events:
        audit_log.info("x", extra={"event_type": "no_such_type"})
        audit_log.info("y")
    assert [event.message for event in events] == ["y"]
    assert "Invalid enum value 'no_such_type'" in capsys.readouterr().err


def test_an_unknown_default_event_type_is_a_value_error() -> None:
    """The handler's own option is checked when it is built."""
    with pytest.raises(ValueError, match="AuditHandler: event_type"):
        AuditHandler(event_type="nonsense")  # type: ignore[arg-type]


def test_an_audit_loggers_records_arrive_at_the_agent(
    audit_log: logging.Logger,
    service_context: AuditContext,
    agent_emitter: Emitter,
    delivered_events: Callable[[int], list[AuditEvent]],
) -> None:
    """End to end: records through AuditHandler reach a real agent's file, fields and order intact."""
    audit_log.addHandler(AuditHandler(context=service_context, emit=agent_emitter.emit))
    audit_log.setLevel(logging.INFO)
    audit_log.debug("below the level: not sent")
    audit_log.info("login", extra={"event_type": "user_login", "user_id": "alice", "source_ip": "10.0.0.4"})
    audit_log.warning("export", extra={"event_type": "data_export", "user_id": "alice", "rows": 1200})
    login, export = delivered_events(2)
    assert (login.event_type, login.user_id, login.source_ip, login.message) == (
        "user_login",
        "alice",
        "10.0.0.4",
        "login",
    )
    assert (export.event_type, export.severity, export.details["rows"]) == ("data_export", "medium", 1200)
