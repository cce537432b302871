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
unless `extra` has them. Values that are not plain data are logged as their repr().

A record that cannot become an event (an unknown event type, a value of the wrong type) goes to
`Handler.handleError`, as any logging failure does: reported on stderr, never raised into the caller.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import msgspec

from shipper import correlation
from shipper.config import AuditContext
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity
from shipper.logger import Emit, default_emit

# What every LogRecord has; the rest of a record's attributes came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Fields the record's own data or the handler decides, which `extra` cannot set.
_NOT_FROM_EXTRA = frozenset(
    {"event_id", "timestamp", "schema_version", "service_name", "service_version", "environment", "node_id"}
)
_FROM_EXTRA = frozenset(AuditEvent.__struct_fields__) - _NOT_FROM_EXTRA


def _severity(levelno: int) -> AuditSeverity:
    if levelno >= logging.CRITICAL:
        return AuditSeverity.CRITICAL
    if levelno >= logging.ERROR:
        return AuditSeverity.HIGH
    if levelno >= logging.WARNING:
        return AuditSeverity.MEDIUM
    return AuditSeverity.INFO


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
        for key, value in record.__dict__.items():
            if key in _FROM_EXTRA:
                fields[key] = value
            elif key not in _RECORD_ATTRIBUTES:
                details[key] = value
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
        plain = msgspec.to_builtins(fields, enc_hook=repr)
        event = msgspec.convert(plain, AuditEvent)
        event.message = record.getMessage()
        event.timestamp = datetime.fromtimestamp(record.created, UTC)
        for name, value in self._service.items():
            setattr(event, name, value)
        return event
