"""An audit event as an OCSF 1.3 event (https://schema.ocsf.io), for `payload = "ocsf"`.

Each event type goes to the class that describes it, or to the nearest one:

    USER_LOGIN, USER_LOGOUT, AUTH_*                        3002 Authentication (Logon, Logoff)
    DATA_CREATE/UPDATE/DELETE of a user or an account      3001 Account Change (Create, Delete, Other)
    CONFIGURATION_CHANGE                                   3004 Entity Management (Update)
    API_REQUEST, API_RESPONSE                              6003 API Activity (Create, Read... by method)
    BUSINESS_LOGIC, TRANSACTION, WORKFLOW                  6003 API Activity (Other): a service's operation
    other DATA_*, PRIVACY_ACCESS, DATA_RETENTION           6001 Web Resources Activity (Create, Read...)
    ACCESS_GRANTED, ACCESS_DENIED, PERMISSION_CHECK        6004 Web Resource Access Activity (Grant, Deny)
    SYSTEM_STARTUP, SYSTEM_SHUTDOWN, HEARTBEAT             6002 Application Lifecycle (Start, Stop, Other)
    SECURITY_VIOLATION, SUSPICIOUS_ACTIVITY, RATE_LIMIT_*  2004 Detection Finding (Create)
    COMPLIANCE_CHECK                                       2003 Compliance Finding (Create)

`type_uid = class_uid * 100 + activity_id`. Fields without an OCSF home (details, changes, the
still-encrypted sensitive values, trace ids...) go to `unmapped`, so nothing the event said is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any, NamedTuple

import msgspec

from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity, Sender

OCSF_VERSION = "1.3.0"
OTHER = 99


def _logon_user(event: AuditEvent) -> dict[str, Any]:
    return {"user": {"uid": event.user_id}}


def _changed_account(event: AuditEvent) -> dict[str, Any]:
    return {"user": {"uid": event.resource_id}}  # the account changed; `actor` is who changed it


def _resource(event: AuditEvent) -> dict[str, Any]:
    return {"type": event.resource_type, "uid": event.resource_id}


def _web_resources(event: AuditEvent) -> dict[str, Any]:
    return {"web_resources": [_resource(event)]}


def _api(event: AuditEvent) -> dict[str, Any]:
    operation = event.action or " ".join(filter(None, (event.method, event.endpoint)))
    api = {"operation": operation or event.event_type.value, "request": {"uid": event.request_id}}
    return {"api": api, "resources": [_resource(event)]}


def _entity(event: AuditEvent) -> dict[str, Any]:
    return {"entity": {**_resource(event), "data": _verbatim(event.changes)}}


def _app(event: AuditEvent) -> dict[str, Any]:
    return {"app": {"name": event.service_name, "version": event.service_version}}


def _finding(event: AuditEvent) -> dict[str, Any]:
    title = event.message or event.event_type.value
    return {"finding_info": {"uid": event.event_id, "title": title, "types": [event.event_type.value]}}


def _compliance_finding(event: AuditEvent) -> dict[str, Any]:
    return {**_finding(event), "compliance": {"standards": event.compliance}}


class OcsfClass(NamedTuple):
    uid: int
    name: str
    category_uid: int
    category_name: str
    fields: Callable[[AuditEvent], dict[str, Any]]
    """What the class requires beyond the common fields, from what the event has."""


_IAM, _APP, _FINDINGS = "Identity & Access Management", "Application Activity", "Findings"
ACCOUNT_CHANGE = OcsfClass(3001, "Account Change", 3, _IAM, _changed_account)
AUTHENTICATION = OcsfClass(3002, "Authentication", 3, _IAM, _logon_user)
ENTITY_MANAGEMENT = OcsfClass(3004, "Entity Management", 3, _IAM, _entity)
WEB_RESOURCES_ACTIVITY = OcsfClass(6001, "Web Resources Activity", 6, _APP, _web_resources)
APPLICATION_LIFECYCLE = OcsfClass(6002, "Application Lifecycle", 6, _APP, _app)
API_ACTIVITY = OcsfClass(6003, "API Activity", 6, _APP, _api)
WEB_RESOURCE_ACCESS_ACTIVITY = OcsfClass(6004, "Web Resource Access Activity", 6, _APP, _web_resources)
COMPLIANCE_FINDING = OcsfClass(2003, "Compliance Finding", 2, _FINDINGS, _compliance_finding)
DETECTION_FINDING = OcsfClass(2004, "Detection Finding", 2, _FINDINGS, _finding)

T = AuditEventType
# event type -> (class, activity_id, activity_name); API activity, account changes and permission
# checks depend on more than the type and are decided in `classify`.
_BY_TYPE: dict[AuditEventType, tuple[OcsfClass, int, str]] = {
    T.USER_LOGIN: (AUTHENTICATION, 1, "Logon"),
    T.AUTH_SUCCESS: (AUTHENTICATION, 1, "Logon"),
    T.AUTH_FAILURE: (AUTHENTICATION, 1, "Logon"),
    T.USER_LOGOUT: (AUTHENTICATION, 2, "Logoff"),
    T.ACCESS_GRANTED: (WEB_RESOURCE_ACCESS_ACTIVITY, 1, "Access Grant"),
    T.ACCESS_DENIED: (WEB_RESOURCE_ACCESS_ACTIVITY, 2, "Access Deny"),
    T.DATA_CREATE: (WEB_RESOURCES_ACTIVITY, 1, "Create"),
    T.DATA_READ: (WEB_RESOURCES_ACTIVITY, 2, "Read"),
    T.DATA_ACCESS: (WEB_RESOURCES_ACTIVITY, 2, "Read"),
    T.PRIVACY_ACCESS: (WEB_RESOURCES_ACTIVITY, 2, "Read"),
    T.DATA_UPDATE: (WEB_RESOURCES_ACTIVITY, 3, "Update"),
    T.DATA_DELETE: (WEB_RESOURCES_ACTIVITY, 4, "Delete"),
    T.DATA_EXPORT: (WEB_RESOURCES_ACTIVITY, 7, "Export"),
    T.DATA_RETENTION: (WEB_RESOURCES_ACTIVITY, OTHER, "Data Retention"),
    T.SYSTEM_STARTUP: (APPLICATION_LIFECYCLE, 3, "Start"),
    T.SYSTEM_SHUTDOWN: (APPLICATION_LIFECYCLE, 4, "Stop"),
    T.HEARTBEAT: (APPLICATION_LIFECYCLE, OTHER, "Heartbeat"),
    T.CONFIGURATION_CHANGE: (ENTITY_MANAGEMENT, 3, "Update"),
    T.BUSINESS_LOGIC: (API_ACTIVITY, OTHER, "Business Logic"),
    T.TRANSACTION: (API_ACTIVITY, OTHER, "Transaction"),
    T.WORKFLOW: (API_ACTIVITY, OTHER, "Workflow"),
    T.SECURITY_VIOLATION: (DETECTION_FINDING, 1, "Create"),
    T.SUSPICIOUS_ACTIVITY: (DETECTION_FINDING, 1, "Create"),
    T.RATE_LIMIT_EXCEEDED: (DETECTION_FINDING, 1, "Create"),
    T.COMPLIANCE_CHECK: (COMPLIANCE_FINDING, 1, "Create"),
}
_API_BY_METHOD = {
    "POST": (1, "Create"),
    "GET": (2, "Read"),
    "HEAD": (2, "Read"),
    "PUT": (3, "Update"),
    "PATCH": (3, "Update"),
    "DELETE": (4, "Delete"),
}
_ACCOUNT_ACTIVITY = {
    T.DATA_CREATE: (1, "Create"),
    T.DATA_DELETE: (6, "Delete"),
    T.DATA_UPDATE: (OTHER, "Update"),
}
ACCOUNT_RESOURCE_TYPES = frozenset({"user", "users", "account", "accounts", "user_account"})
_SEVERITY = {
    AuditSeverity.INFO: (1, "Informational"),
    AuditSeverity.LOW: (2, "Low"),
    AuditSeverity.MEDIUM: (3, "Medium"),
    AuditSeverity.HIGH: (4, "High"),
    AuditSeverity.CRITICAL: (5, "Critical"),
}
_STATUS = {
    AuditOutcome.SUCCESS: (1, "Success"),
    AuditOutcome.FAILURE: (2, "Failure"),
    AuditOutcome.ERROR: (2, "Failure"),
    AuditOutcome.UNKNOWN: (0, "Unknown"),
}
# These types say the outcome themselves, whatever `outcome` was left at.
_FAILED_BY_TYPE = frozenset({T.AUTH_FAILURE, T.ACCESS_DENIED})

_encoder = msgspec.json.Encoder()


def classify(event: AuditEvent) -> tuple[OcsfClass, int, str]:
    """The event's OCSF class, activity_id and activity_name."""
    kind = event.event_type
    if kind in (T.API_REQUEST, T.API_RESPONSE):
        activity, name = _API_BY_METHOD.get((event.method or "").upper(), (OTHER, event.method or "Other"))
        return API_ACTIVITY, activity, name
    if kind in _ACCOUNT_ACTIVITY and (event.resource_type or "").lower() in ACCOUNT_RESOURCE_TYPES:
        return ACCOUNT_CHANGE, *_ACCOUNT_ACTIVITY[kind]
    if kind is T.PERMISSION_CHECK:
        if event.outcome is AuditOutcome.SUCCESS:
            return WEB_RESOURCE_ACCESS_ACTIVITY, 1, "Access Grant"
        if event.outcome is AuditOutcome.FAILURE:
            return WEB_RESOURCE_ACCESS_ACTIVITY, 2, "Access Deny"
        return WEB_RESOURCE_ACCESS_ACTIVITY, OTHER, "Permission Check"
    return _BY_TYPE[kind]


def _process(sender: Sender) -> dict[str, Any]:
    """The process that handed the event to the agent, as the kernel named it (OCSF Process)."""
    user = {"uid": str(sender.uid) if sender.uid is not None else None, "name": sender.user}
    return {
        "pid": sender.pid,
        "user": user,
        "file": {"path": sender.executable} if sender.executable else None,
    }


def _record(event: AuditEvent) -> dict[str, Any]:
    ocsf_class, activity_id, activity_name = classify(event)
    severity_id, severity = _SEVERITY[event.severity]
    status_id, status = (2, "Failure") if event.event_type in _FAILED_BY_TYPE else _STATUS[event.outcome]
    timestamp = event.timestamp if event.timestamp.tzinfo else event.timestamp.replace(tzinfo=UTC)
    record: dict[str, Any] = {
        "class_uid": ocsf_class.uid,
        "class_name": ocsf_class.name,
        "category_uid": ocsf_class.category_uid,
        "category_name": ocsf_class.category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": ocsf_class.uid * 100 + activity_id,
        "type_name": f"{ocsf_class.name}: {activity_name}",
        "time": int(timestamp.timestamp() * 1000),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "status_detail": event.outcome.value if event.outcome is AuditOutcome.ERROR else None,
        "message": event.message or None,
        "duration": int(event.duration_ms) if event.duration_ms is not None else None,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": event.event_id,
            "correlation_uid": event.correlation_id,
            "log_name": event.service_name,
            "product": {"name": "auditship", "vendor_name": "auditship"},
        },
        "actor": {
            "user": {"uid": event.user_id} if event.user_id else None,
            "session": {"uid": event.session_id} if event.session_id else None,
            "app_name": event.service_name,
            "process": _process(event.sender) if event.sender is not None else None,
        },
        "src_endpoint": {"ip": event.source_ip} if event.source_ip else None,
        "http_request": {
            "http_method": event.method,
            "url": {"path": event.endpoint} if event.endpoint else None,
            "user_agent": event.user_agent,
            "uid": event.request_id,
        },
        "http_response": {"code": event.status_code},
        "unmapped": {
            "event_type": event.event_type.value,
            "action": event.action,
            "details": _verbatim(event.details),
            "changes": _verbatim(event.changes),
            "sensitive": _verbatim(event.sensitive),  # still the intake's ciphertext envelopes
            "compliance": event.compliance,
            "trace_id": event.trace_id,
            "span_id": event.span_id,
            "environment": event.environment,
            "node_id": event.node_id,
            "service_version": event.service_version,
            "request_size": event.request_size,
            "response_size": event.response_size,
        },
    }
    record.update(ocsf_class.fields(event))
    return record


def _verbatim(values: dict[str, Any]) -> msgspec.Raw | None:
    """The service's own map, encoded as it is: `_compact` must not drop its nulls or empty values."""
    return msgspec.Raw(_encoder.encode(values)) if values else None


def _compact(value: Any) -> Any:
    """The record without what is absent (None, empty maps and lists), at every depth."""
    if isinstance(value, dict):
        kept = {key: _compact(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item is not None and item not in ({}, [])}
    if isinstance(value, list):
        return [_compact(item) for item in value]
    return value


def encode_ocsf(event: AuditEvent) -> bytes:
    return _encoder.encode(_compact(_record(event)))
