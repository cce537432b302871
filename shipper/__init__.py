"""auditship's in-service side: the event model, emit(), the AuditLogger and audit_context.

Importing this loads msgspec and the standard library only; ZeroMQ is loaded when the first event is
sent, and the agent's packages only when `audit_context` has to start an embedded agent.
"""

from shipper.builder import AuditEventBuilder
from shipper.config import AuditConfig, AuditContext
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity, new_event_id
from shipper.logger import AuditLogger

__all__ = [
    "AuditConfig",
    "AuditContext",
    "AuditEvent",
    "AuditEventBuilder",
    "AuditEventType",
    "AuditLogger",
    "AuditOutcome",
    "AuditSeverity",
    "Emitter",
    "audit_context",
    "emit",
    "get_emitter",
    "new_event_id",
]


def __getattr__(name: str) -> object:
    # emit, the Emitter and audit_context pull in pyzmq: loaded on first use, not on import.
    if name in ("emit", "Emitter", "get_emitter"):
        from shipper import emitter

        return getattr(emitter, name)
    if name == "audit_context":
        from shipper.context import audit_context

        return audit_context
    raise AttributeError(f"module 'shipper' has no attribute {name!r}")
