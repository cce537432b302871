"""`AuditHandler`: a `logging.Handler` that turns log records into audit events, so that a service
that already logs its audit trail through the standard library can send it to the agent unchanged.

    audit_log = logging.getLogger("audit")
    audit_log.addHandler(AuditHandler(context=AuditContext(service_name="billing")))
    audit_log.setLevel(logging.INFO)

    audit_log.info(
        "refund issued",
        extra={"event_type": "transaction", "user_id": "u-17", "resource_type": "order",
               "resource_id": "o-9", "amount": 12.5, "sensitive": {"iban": "DE89..."}},
    )

A record becomes one event: its message is the event's message and its time the event's timestamp.
Keys of `extra` that name an AuditEvent field (`event_type`, `user_id`, `outcome`, `severity`,
`resource_id`, `changes`, `sensitive`...) set that field, converted as the agent would (a string to its
enum); every other key goes into `details`, with the logger's name as `details["logger"]`. Without an
`event_type` the handler's default is used; without a `severity` the level decides (DEBUG and INFO:
INFO, WARNING: MEDIUM, ERROR: HIGH, CRITICAL: CRITICAL); a record logged with an exception has outcome
ERROR unless `extra` says otherwise, and the exception's type in `details["exception"]`. Correlation
ids in effect (shipper.correlation, which the middleware sets per request) are stamped on the event
unless `extra` has them.

Only JSON-safe data of `extra` is kept: str, int, float, bool, None, and lists and dicts of them
(tuples and sets become lists, number keys strings). A datetime, date or time becomes its ISO 8601
string, a UUID or Decimal its string, an Enum its value. Anything else, bytes and the objects of
applications (a user model, a request) included, is logged as its type's name only,
`"<object of type User>"`: never its repr() or str(), which may hold a password hash or a token.
The data is bounded: strings to MAX_STRING characters, nesting to MAX_DEPTH lists or dicts, and
MAX_MEMBERS members of lists and dicts in one record; what is cut is replaced by a note saying so.

A record that cannot become an event (an unknown event type, a value of the wrong type) goes to
`Handler.handleError`, as any logging failure does: reported on stderr, never raised into the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any, cast
from uuid import UUID

import msgspec

from shipper import correlation
from shipper.config import AuditContext
from shipper.dispatch import Emit, default_emit
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity

# What every LogRecord has; the rest of a record's attributes came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Fields the record's own data, the handler or the agent (`sender`) decides, which `extra` cannot set.
_NOT_FROM_EXTRA = frozenset(
    {
        "event_id",
        "timestamp",
        "schema_version",
        "service_name",
        "service_version",
        "environment",
        "node_id",
        "sender",
    }
)
_FROM_EXTRA = frozenset(AuditEvent.__struct_fields__) - _NOT_FROM_EXTRA

MAX_STRING = 4096
"""Characters of one string (or dict key) of `extra`; the rest is replaced by a note of how many."""
MAX_DEPTH = 8
"""Lists and dicts one `extra` value nests (`extra={"a": [[1]]}` nests 2); a deeper one is a note."""
MAX_MEMBERS = 256
"""Members of lists and dicts in one record's `extra`, counted together so that nesting cannot multiply
the size; the members past it are replaced by a note of how many."""
# Exact types, not isinstance: a subclass of str or dict may be a secret type whose repr() hides its
# value (and msgspec's encoder refuses subclasses of str and int anyway).
_CONTAINERS = frozenset({dict, list, tuple, set, frozenset})
# Values whose string form is what they are, never an object's representation.
_AS_STRING = (datetime, date, time, UUID, Decimal)
# msgpack, the emitter's wire format, holds no wider integer.
_INT_RANGE = range(-(2**63), 2**64)


def _severity(levelno: int) -> AuditSeverity:
    if levelno >= logging.CRITICAL:
        return AuditSeverity.CRITICAL
    if levelno >= logging.ERROR:
        return AuditSeverity.HIGH
    if levelno >= logging.WARNING:
        return AuditSeverity.MEDIUM
    return AuditSeverity.INFO


def _string(value: str) -> str:
    if len(value) <= MAX_STRING:
        return value
    return f"{value[:MAX_STRING]}...<{len(value) - MAX_STRING} more characters>"


def _scalar(value: object) -> Any:
    """A value that is not a list or dict, as JSON-safe data: itself, its string, or its type's name."""
    kind = type(value)
    if value is None or kind is bool or kind is float or (kind is int and value in _INT_RANGE):
        return value
    if type(value) is str:
        return _string(value)
    if isinstance(value, _AS_STRING):
        return msgspec.to_builtins(value)
    if kind is int:
        return "<int out of range>"
    return f"<object of type {kind.__name__}>"


class _Plain:
    """One record's `extra` values as JSON-safe data, within the bounds (MAX_MEMBERS is counted across
    the record, so it is one object per record)."""

    def __init__(self) -> None:
        self.members_left = MAX_MEMBERS

    def value(self, value: object, depth: int = 0) -> Any:
        if isinstance(value, Enum):
            value = value.value
        if type(value) not in _CONTAINERS:
            return _scalar(value)
        if depth == MAX_DEPTH:
            return f"<{type(value).__name__} nested deeper than {MAX_DEPTH}>"
        if isinstance(value, dict):
            return self._dict(value, depth + 1)
        return self._list(cast("Collection[Any]", value), depth + 1)

    def _list(self, values: Collection[Any], depth: int) -> list[Any]:
        plain: list[Any] = []
        for done, item in enumerate(values):
            if not self.members_left:
                plain.append(f"<{len(values) - done} more items>")
                break
            self.members_left -= 1
            plain.append(self.value(item, depth))
        return plain

    def _dict(self, values: dict[Any, Any], depth: int) -> dict[str, Any]:
        plain: dict[str, Any] = {}
        for done, (key, item) in enumerate(values.items()):
            if not self.members_left:
                plain["<truncated>"] = f"<{len(values) - done} more items>"
                break
            self.members_left -= 1
            plain[self._key(key)] = self.value(item, depth)
        return plain

    @staticmethod
    def _key(key: object) -> str:
        if type(key) is str:
            return _string(key)
        if (type(key) is int and key in _INT_RANGE) or type(key) is float:
            return str(key)
        return f"<object of type {type(key).__name__}>"


class AuditHandler(logging.Handler):
    """Sends each record it handles to `emit` (default: the agent, or the active capture_events()) as an
    AuditEvent; `context` stamps the service fields and compliance tags, `event_type` is the default type."""

    def __init__(
        self,
        level: int = logging.NOTSET,
        *,
        context: AuditContext | None = None,
        event_type: AuditEventType = AuditEventType.BUSINESS_LOGIC,
        emit: Emit | None = None,
    ) -> None:
        super().__init__(level)
        try:
            self.event_type = AuditEventType(event_type)
        except ValueError as exc:
            raise ValueError(f"AuditHandler: event_type: {exc}") from exc
        self._emit: Emit = emit if emit is not None else default_emit
        self._service = context.event_fields() if context is not None else {}
        self._compliance = list(dict.fromkeys(context.compliance_requirements)) if context else []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit(self.to_event(record))
        except Exception:  # noqa: BLE001 - logging's contract: report through handleError, never raise
            self.handleError(record)

    def to_event(self, record: logging.LogRecord) -> AuditEvent:
        """The event a record becomes; raises msgspec.ValidationError for an unusable `extra` value."""
        fields: dict[str, Any] = {}
        details: dict[str, Any] = {"logger": record.name}
        plain = _Plain()
        for key, value in record.__dict__.items():
            if key in _FROM_EXTRA:
                fields[key] = plain.value(value)
            elif key not in _RECORD_ATTRIBUTES:
                details[key] = plain.value(value)
        if record.exc_info and record.exc_info[0] is not None:
            details["exception"] = record.exc_info[0].__qualname__
            fields.setdefault("outcome", AuditOutcome.ERROR)
        fields.setdefault("event_type", self.event_type)
        fields.setdefault("severity", _severity(record.levelno))
        fields["details"] = {**details, **fields.get("details", {})}
        fields["compliance"] = list(dict.fromkeys([*self._compliance, *fields.get("compliance", [])]))
        for name, value in correlation.current()._asdict().items():
            if value is not None:
                fields.setdefault(name, value)
        event = msgspec.convert(fields, AuditEvent)
        event.message = record.getMessage()
        event.timestamp = datetime.fromtimestamp(record.created, UTC)
        for name, value in self._service.items():
            setattr(event, name, value)
        return event
