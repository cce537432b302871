"""An audit event as a CEF record (ArcSight Common Event Format), the syslog sink's `payload = "cef"`:

    CEF:0|auditship|<service>|<service version>|<event type>|<message>|<severity>|rt=... suser=... msg=...

The two halves escape differently, as the CEF standard says:
- header fields: `\\` -> `\\\\` and `|` -> `\\|`; `=` stays as it is. A header cannot hold a line
  break (multi-line values are allowed only in extension values), so CR and LF become spaces.
- extension values: `\\` -> `\\\\`, `=` -> `\\=`, LF -> `\\n`, CR -> `\\r`; `|` stays as it is.
Extension keys are fixed names from the CEF dictionary (and cs1..cs6 with labels), never the
service's own words, so they need no escaping. Details, changes, compliance tags and trace ids travel
as one JSON value (cs5); the sensitive values, still encrypted, as another (cs6).
"""

from __future__ import annotations

import ipaddress
from datetime import UTC

import msgspec

from shipper.event import AuditEvent, AuditSeverity

SEVERITY = {
    AuditSeverity.INFO: 1,
    AuditSeverity.LOW: 3,
    AuditSeverity.MEDIUM: 5,
    AuditSeverity.HIGH: 8,
    AuditSeverity.CRITICAL: 10,
}
_HEADER_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "\r": " ", "\n": " "})
_VALUE_ESCAPES = str.maketrans({"\\": "\\\\", "=": "\\=", "\r": "\\r", "\n": "\\n"})
_json = msgspec.json.Encoder()


def header_field(value: str) -> str:
    return value.translate(_HEADER_ESCAPES)


def extension_value(value: str) -> str:
    return value.translate(_VALUE_ESCAPES)


def encode_cef(event: AuditEvent) -> bytes:
    header = [
        "CEF:0",
        "auditship",
        header_field(event.service_name or "auditship"),
        header_field(event.service_version or ""),
        header_field(event.event_type.value),
        header_field(event.message or event.event_type.value),
        str(SEVERITY[event.severity]),
    ]
    extension = " ".join(
        f"{key}={extension_value(str(value))}" for key, value in _extensions(event) if value not in (None, "")
    )
    return ("|".join(header) + "|" + extension).encode()


def _extensions(event: AuditEvent) -> list[tuple[str, object]]:
    timestamp = event.timestamp if event.timestamp.tzinfo else event.timestamp.replace(tzinfo=UTC)
    resource = "/".join(part for part in (event.resource_type, event.resource_id) if part)
    data = {
        "details": event.details,
        "changes": event.changes,
        "compliance": event.compliance,
        "trace_id": event.trace_id,
        "span_id": event.span_id,
        "environment": event.environment,
        "sender": msgspec.to_builtins(event.sender) if event.sender is not None else None,
    }
    data = {key: value for key, value in data.items() if value}
    pairs: list[tuple[str, object]] = [
        ("rt", int(timestamp.timestamp() * 1000)),
        ("externalId", event.event_id),
        ("cat", event.event_type.value),
        ("act", event.action),
        ("outcome", event.outcome.value),
        ("msg", event.message),
        ("suser", event.user_id),
        # `src` must be an IP address for CEF consumers; anything else the service put there is a name.
        ("src" if _is_ip(event.source_ip) else "shost", event.source_ip),
        ("requestClientApplication", event.user_agent),
        ("requestMethod", event.method),
        ("request", event.endpoint),
        ("in", event.request_size),
        ("out", event.response_size),
        ("dvchost", event.node_id),
        # The process that handed the event to the agent, as the kernel named it (the rest: in cs5).
        ("dvcpid", event.sender.pid if event.sender is not None else None),
    ]
    labelled: list[tuple[str, str, object]] = [
        ("cn1", "statusCode", event.status_code),
        ("cfp1", "durationMs", event.duration_ms),
        ("cs1", "resource", resource),
        ("cs2", "correlationId", event.correlation_id),
        ("cs3", "sessionId", event.session_id),
        ("cs4", "requestId", event.request_id),
        ("cs5", "data", _json.encode(data).decode() if data else None),
        ("cs6", "sensitive", _json.encode(event.sensitive).decode() if event.sensitive else None),
    ]
    for key, label, value in labelled:
        if value not in (None, ""):
            pairs += [(key, value), (f"{key}Label", label)]
    return pairs


def _is_ip(value: str | None) -> bool:
    if not value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
