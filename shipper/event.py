"""The audit event: one msgspec Struct that is the wire format and the row schema at once.

Fields are only ever added at the end, with defaults, so older agents and lakes keep reading newer
events and the reverse.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from os import urandom
from time import time_ns
from typing import Any

import msgspec

SCHEMA_VERSION = 1


class AuditEventType(enum.StrEnum):
    USER_LOGIN = "user_login"
    USER_LOGOUT = "user_logout"
    AUTH_SUCCESS = "auth_success"
    AUTH_FAILURE = "auth_failure"
    ACCESS_GRANTED = "access_granted"
    ACCESS_DENIED = "access_denied"
    PERMISSION_CHECK = "permission_check"
    DATA_CREATE = "data_create"
    DATA_READ = "data_read"
    DATA_UPDATE = "data_update"
    DATA_DELETE = "data_delete"
    DATA_EXPORT = "data_export"
    DATA_ACCESS = "data_access"
    API_REQUEST = "api_request"
    API_RESPONSE = "api_response"
    SECURITY_VIOLATION = "security_violation"
    SUSPICIOUS_ACTIVITY = "suspicious_activity"
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    SYSTEM_STARTUP = "system_startup"
    SYSTEM_SHUTDOWN = "system_shutdown"
    CONFIGURATION_CHANGE = "configuration_change"
    HEARTBEAT = "heartbeat"
    BUSINESS_LOGIC = "business_logic"
    TRANSACTION = "transaction"
    WORKFLOW = "workflow"
    COMPLIANCE_CHECK = "compliance_check"
    DATA_RETENTION = "data_retention"
    PRIVACY_ACCESS = "privacy_access"


class AuditSeverity(enum.StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Position in the order INFO < LOW < MEDIUM < HIGH < CRITICAL, for `min_severity`."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(AuditSeverity)}


class AuditOutcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"
    UNKNOWN = "unknown"


def new_event_id() -> str:
    """A new event id: 32 hex digits, 48 bits of milliseconds since the epoch, then 80 bits from the
    operating system's CSPRNG.

    Ids sort by creation time to the millisecond, and cannot be guessed: knowing one (the X-Request-ID a
    response returns is its request's event id) tells nothing of the next, so nobody can claim an id
    before the event that will have it. Two ids of one millisecond collide with probability 2^-80.
    """
    return ((time_ns() // 1_000_000 << 80) | int.from_bytes(urandom(10), "big")).to_bytes(16, "big").hex()


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC, a naive one taken as UTC already. A moment whose UTC instant falls outside
    years 1-9999 (year 1 at +14:00, year 9999 at -14:00) cannot be converted and comes back as it was:
    the intake refuses such an event with that reason."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return moment


class Sender(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    """Who handed an event to the agent, as the agent's kernel told it: never what the event claims.

    On the ipc intake the uid, gid and pid are the connecting process's credentials (SO_PEERCRED);
    `executable` is its /proc/PID/exe when the agent may read it (an unprivileged agent may not read
    another user's). For a spooled event, the spool file's owner and group (no pid). The intake sets
    it on every event it accepts, replacing whatever an emitter put there; None over TCP, which carries
    no identity the kernel vouches for.
    """

    uid: int | None = None
    gid: int | None = None
    pid: int | None = None
    user: str | None = None
    """The uid's user name on the agent's host."""
    executable: str | None = None
    mismatch: bool = False
    """True when `[intake.identities]` does not allow this sender the event's `service_name` and
    `intake.identity_mismatch = "flag"` kept the event anyway."""


class AuditEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One audited action. `sensitive` holds values the agent encrypts before anything is written.

    `timestamp` is always in UTC: a naive datetime (`datetime.utcnow()`, a database's naive column) is
    taken as UTC, an aware one is converted, both when the event is built and when it is decoded.
    """

    event_type: AuditEventType
    event_id: str = msgspec.field(default_factory=new_event_id)
    timestamp: datetime = msgspec.field(default_factory=utc_now)
    severity: AuditSeverity = AuditSeverity.INFO
    outcome: AuditOutcome = AuditOutcome.SUCCESS
    message: str = ""
    action: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    service_name: str | None = None
    service_version: str | None = None
    environment: str | None = None
    node_id: str | None = None
    correlation_id: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    method: str | None = None
    endpoint: str | None = None
    status_code: int | None = None
    duration_ms: float | None = None
    request_size: int | None = None
    response_size: int | None = None
    details: dict[str, Any] = msgspec.field(default_factory=dict)
    changes: dict[str, Any] = msgspec.field(default_factory=dict)
    sensitive: dict[str, Any] = msgspec.field(default_factory=dict)
    compliance: list[str] = msgspec.field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    sender: Sender | None = None
    """Set by the agent's intake (see Sender); whatever an emitter puts here is replaced."""

    def __post_init__(self) -> None:
        # Normalised once, here, so that nothing downstream subtracts a naive time from an aware one.
        # Nearly every timestamp is UTC already (the default; msgpack carries an instant, decoded as
        # UTC): this one test is then the whole cost, when an event is built and each time it is decoded.
        try:
            if self.timestamp.tzinfo is not UTC:
                self.timestamp = as_utc(self.timestamp)
        except AttributeError:
            pass  # not a datetime: the decoder names the wrong type (encoding keeps it as it is)
