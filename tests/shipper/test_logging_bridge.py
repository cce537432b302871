"""AuditHandler turns stdlib log records into audit events: unit tests with capture_events(), and the
records of an `audit` logger asserted where they arrive, at a real agent."""

from __future__ import annotations

import dataclasses
import enum
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal

import msgspec
import pydantic
import pytest

from auditship.agents.intake.checks import refusal
from shipper.config import AuditContext
from shipper.correlation import correlation
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity
from shipper.logging_bridge import MAX_DEPTH, MAX_MEMBERS, MAX_STRING, AuditHandler
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


def test_a_sender_in_extra_is_a_detail_never_the_events_sender(audit_log: logging.Logger) -> None:
    """`sender` is the agent's to set (from the kernel): the record's goes to details, as it is."""
    audit_log.addHandler(AuditHandler(context=CONTEXT))
    with capture_events() as events:
        audit_log.info("paid", extra={"sender": "bob"})
    [event] = events
    assert (event.sender, event.details["sender"]) == (None, "bob")


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


SECRET = "$2b$12$hashedpasswordnottobelogged"


@dataclasses.dataclass
class User:
    """A dataclass whose repr() shows every field, as SQLModel's does."""

    name: str
    hashed_password: str


class Account(pydantic.BaseModel):
    """A pydantic model, whose repr() and model_dump() show its fields."""

    email: str
    api_token: str


class Token(str):
    """A str subclass that keeps its value out of its repr(): its value is not logged either."""

    def __repr__(self) -> str:
        return "Token(***)"


class Colour(enum.Enum):
    RED = "red"


def test_an_object_in_extra_is_logged_as_its_types_name_never_its_repr_or_str(
    audit_log: logging.Logger,
) -> None:
    """A user model passed in extra= (the SQLModel user whose repr carried its hashed_password) is named
    by its type only, wherever it is: a detail, inside a list or dict, an event field; so are bytes."""
    user = User(name="alice", hashed_password=SECRET)
    account = Account(email="alice@example.com", api_token=SECRET)
    audit_log.addHandler(AuditHandler())
    with capture_events() as events:
        audit_log.info(
            "x",
            extra={
                "user": user,
                "account": account,
                "token": Token(SECRET),
                "raw": SECRET.encode(),
                "members": [user, {"owner": account}],
                "user_id": user,
                "sensitive": {"user": user},
            },
        )
    [event] = events
    assert event.details == {
        "logger": audit_log.name,
        "user": "<object of type User>",
        "account": "<object of type Account>",
        "token": "<object of type Token>",
        "raw": "<object of type bytes>",
        "members": ["<object of type User>", {"owner": "<object of type Account>"}],
    }
    assert event.user_id == "<object of type User>"
    assert event.sensitive == {"user": "<object of type User>"}
    assert SECRET not in msgspec.json.encode(event).decode()


def test_plain_data_is_kept_as_json_has_it(audit_log: logging.Logger) -> None:
    """Nested lists and dicts keep their values; tuples and sets become lists, number keys strings,
    an enum its value; an object among them is named by its type."""
    audit_log.addHandler(AuditHandler())
    with capture_events() as events:
        audit_log.info(
            "x",
            extra={
                "order": {"id": "o-9", "lines": [{"sku": "A1", "qty": 2, "price": 9.5, "gift": False}]},
                "pair": ("a", 1),
                "tags": {"vip"},
                "by_year": {2024: None, 1.5: "half"},
                "colour": Colour.RED,
                "severity": AuditSeverity.LOW,
                "odd_key": {b"k": 1},
            },
        )
    [event] = events
    assert event.details == {
        "logger": audit_log.name,
        "order": {"id": "o-9", "lines": [{"sku": "A1", "qty": 2, "price": 9.5, "gift": False}]},
        "pair": ["a", 1],
        "tags": ["vip"],
        "by_year": {"2024": None, "1.5": "half"},
        "colour": "red",
        "odd_key": {"<object of type bytes>": 1},
    }
    assert event.severity is AuditSeverity.LOW


def test_datetimes_uuids_and_decimals_are_logged_as_their_strings(audit_log: logging.Logger) -> None:
    """A datetime, date or time becomes its ISO 8601 string, a UUID or Decimal its string: values whose
    string is what they are, and useful in a trail."""
    audit_log.addHandler(AuditHandler())
    moment = datetime(2024, 5, 17, 9, 30, 0, 250000, tzinfo=UTC)
    order_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    with capture_events() as events:
        audit_log.info(
            "x",
            extra={
                "paid_at": moment,
                "due": [date(2024, 6, 1)],
                "cutoff": time(17, 0),
                "order_id": order_id,
                "amount": Decimal("12.50"),
            },
        )
    details = events[0].details
    assert details["paid_at"] == "2024-05-17T09:30:00.250000Z"
    assert details["due"] == ["2024-06-01"]
    assert details["cutoff"] == "17:00:00"
    assert details["order_id"] == "12345678-1234-5678-1234-567812345678"
    assert details["amount"] == "12.50"


def test_huge_values_are_cut_with_a_note_and_the_event_stays_small(audit_log: logging.Logger) -> None:
    """A long string keeps MAX_STRING characters, a container nested deeper than MAX_DEPTH is a note,
    the members of one record's lists and dicts stop at MAX_MEMBERS, an int msgpack cannot hold is a
    note: the event stays a few kilobytes, and the agent's intake accepts it."""
    deep: list[object] = ["bottom"]
    for _ in range(100):
        deep = [deep]
    audit_log.addHandler(AuditHandler())
    with capture_events() as events:
        audit_log.info(
            "x",
            extra={
                "body": "x" * 1_000_000,
                "deep": deep,
                "ids": list(range(100_000)),
                "more": {str(n): n for n in range(10)},
                "big": 10**30,
            },
        )
    [event] = events
    details = event.details
    assert details["body"] == "x" * MAX_STRING + f"...<{1_000_000 - MAX_STRING} more characters>"
    nested = details["deep"]
    for _ in range(MAX_DEPTH - 1):
        [nested] = nested
    assert nested == [f"<list nested deeper than {MAX_DEPTH}>"]
    # The first MAX_DEPTH members went to `deep`.
    assert details["ids"] == [
        *range(MAX_MEMBERS - MAX_DEPTH),
        f"<{100_000 - MAX_MEMBERS + MAX_DEPTH} more items>",
    ]
    assert details["more"] == {"<truncated>": "<10 more items>"}
    assert details["big"] == "<int out of range>"
    assert len(msgspec.msgpack.encode(event)) < 2 * (MAX_STRING + MAX_MEMBERS * 8)
    assert refusal(event) is None


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
