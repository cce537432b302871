"""auditship's in-service side: the event model, emit(), the AuditLogger and audit_context.

Importing this loads msgspec and the standard library only; ZeroMQ is loaded when the first event is
sent, and the agent's packages only when `audit_context` has to start an embedded agent.

`from shipper import *` brings what a plain install can import. The ASGI middleware needs Starlette and the
gRPC interceptors grpcio (optional extras), so their names are left out of `__all__`: import them by name
(`from shipper import AuditMiddleware`), which loads their module then.
"""

from shipper.builder import AuditEventBuilder
from shipper.config import AuditConfig, AuditContext
from shipper.destinations import DatabaseAuditDestination, FileAuditDestination, SIEMAuditDestination
from shipper.errors import AuditDeliveryError, AuditRefusedError
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity, new_event_id
from shipper.logger import AuditLogger
from shipper.logging_bridge import AuditHandler

__all__ = [
    "AuditConfig",
    "AuditContext",
    "AuditDeliveryError",
    "AuditEvent",
    "AuditEventBuilder",
    "AuditEventType",
    "AuditHandler",
    "AuditLogger",
    "AuditMiddlewareConfig",
    "AuditOutcome",
    "AuditRecorder",
    "AuditRefusedError",
    "AuditSeverity",
    "DatabaseAuditDestination",
    "Emitter",
    "EmitterStats",
    "FileAuditDestination",
    "MiddlewareStats",
    "SIEMAuditDestination",
    "audit_context",
    "audit_user_from",
    "emit",
    "get_emitter",
    "new_event_id",
    "set_audit_user",
]

# The middleware's public names by module, each module imported when one of its names is first used, never
# by `import shipper`: some need Starlette or grpcio, optional extras.
_MIDDLEWARE = {
    "AuditMiddlewareConfig": "shipper.middleware.config",
    "AuditRecorder": "shipper.middleware.recorder",
    "MiddlewareStats": "shipper.middleware.recorder",
    "AuditMiddleware": "shipper.middleware.asgi",
    "setup_fastapi_audit_middleware": "shipper.middleware.asgi",
    "AuditServerInterceptor": "shipper.middleware.grpc_server",
    "AioAuditServerInterceptor": "shipper.middleware.grpc_server",
    "setup_grpc_audit_interceptor": "shipper.middleware.grpc_server",
    "set_audit_user": "shipper.middleware.user",
    "audit_user_from": "shipper.middleware.user",
}


def __getattr__(name: str) -> object:
    # emit, the Emitter and audit_context pull in pyzmq: loaded on first use, not on import.
    if name in ("emit", "Emitter", "EmitterStats", "get_emitter"):
        from shipper import emitter

        return getattr(emitter, name)
    if name == "audit_context":
        from shipper.context import audit_context

        return audit_context
    if name in _MIDDLEWARE:
        import importlib

        return getattr(importlib.import_module(_MIDDLEWARE[name]), name)
    raise AttributeError(f"module 'shipper' has no attribute {name!r}")
