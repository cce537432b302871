"""`AuditEventBuilder`: the seed's fluent way to put together an event the convenience methods
of `AuditLogger` do not cover.

    event = (
        audit_logger.create_event_builder()
        .event_type(AuditEventType.BUSINESS_LOGIC)
        .message("Payment processed successfully")
        .user("customer123")
        .resource("payment", "pay-789")
        .detail("amount", 99.99)
        .sensitive_detail("card_number", "****-****-****-1234")
        .build()
    )
    await audit_logger.log_event(event)
"""

from __future__ import annotations

from typing import Any, Self

from shipper import correlation
from shipper.config import AuditContext
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity


class AuditEventBuilder:
    """Collects an event's fields; every setter returns the builder, `build()` makes the event.

    `build()` stamps the service fields and compliance tags of the context the builder was made
    with, and the correlation ids in effect (see shipper.correlation) unless set on the builder.
    A builder can build more than once; each event gets its own id, timestamp and copies of the maps.
    """

    __slots__ = ("_changes", "_compliance", "_context", "_details", "_fields", "_sensitive")

    def __init__(self, context: AuditContext | None = None) -> None:
        self._context = context
        self._fields: dict[str, Any] = {}
        self._details: dict[str, Any] = {}
        self._changes: dict[str, Any] = {}
        self._sensitive: dict[str, Any] = {}
        self._compliance: list[str] = []

    def event_type(self, event_type: AuditEventType) -> Self:
        # Converting checks a value that arrived untyped (a str) here rather than at the agent.
        self._fields["event_type"] = AuditEventType(event_type)
        return self

    def message(self, message: str) -> Self:
        self._fields["message"] = message
        return self

    def user(self, user_id: str, session_id: str | None = None) -> Self:
        self._fields["user_id"] = user_id
        if session_id is not None:
            self._fields["session_id"] = session_id
        return self

    def action(self, action: str) -> Self:
        self._fields["action"] = action
        return self

    def severity(self, severity: AuditSeverity) -> Self:
        self._fields["severity"] = AuditSeverity(severity)
        return self

    def outcome(self, outcome: AuditOutcome) -> Self:
        self._fields["outcome"] = AuditOutcome(outcome)
        return self

    def resource(self, resource_type: str, resource_id: str | None = None) -> Self:
        self._fields["resource_type"] = resource_type
        if resource_id is not None:
            self._fields["resource_id"] = resource_id
        return self

    def performance(self, duration_ms: float) -> Self:
        self._fields["duration_ms"] = duration_ms
        return self

    def source_ip(self, source_ip: str) -> Self:
        self._fields["source_ip"] = source_ip
        return self

    def user_agent(self, user_agent: str) -> Self:
        self._fields["user_agent"] = user_agent
        return self

    def correlation_id(self, correlation_id: str) -> Self:
        """Set the correlation id explicitly, instead of taking the one in effect at `build()`."""
        self._fields["correlation_id"] = correlation_id
        return self

    def detail(self, key: str, value: Any) -> Self:
        self._details[key] = value
        return self

    def sensitive_detail(self, key: str, value: Any) -> Self:
        """A detail the agent encrypts before it reaches any file, table, SIEM or Parquet part."""
        self._sensitive[key] = value
        return self

    def change(self, key: str, value: Any) -> Self:
        """A changed field and its new value, for data events."""
        self._changes[key] = value
        return self

    def compliance(self, *tags: str) -> Self:
        """Compliance tags (such as "SOX", "PCI") in addition to the context's requirements."""
        self._compliance.extend(tags)
        return self

    def build(self) -> AuditEvent:
        """The event; raises ValueError when no event type was set."""
        if "event_type" not in self._fields:
            raise ValueError(
                "AuditEventBuilder.build(): the event type is not set; "
                "call .event_type(AuditEventType...) before .build()"
            )
        fields = dict(self._fields)
        for name, value in correlation.current()._asdict().items():
            if value is not None:
                fields.setdefault(name, value)
        tags = self._compliance
        if self._context is not None:
            fields.update(self._context.event_fields())
            tags = [*self._context.compliance_requirements, *tags]
        return AuditEvent(
            **fields,
            details=dict(self._details),
            changes=dict(self._changes),
            sensitive=dict(self._sensitive),
            # dict.fromkeys drops repeated tags and keeps their first order.
            compliance=list(dict.fromkeys(tags)),
        )
