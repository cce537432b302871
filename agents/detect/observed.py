"""What the detector reads of each WAL record: the few fields its rules look at, decoded without the
rest of the event (msgspec skips the fields a Struct does not name), and which events are its own.

Decoding these eleven fields costs under half of decoding the whole AuditEvent; `details` stays msgpack
until a rule asks for it (an export's record count).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from shipper.event import AuditEventType

DETECT_SERVICE = "audit-agent"
"""The `service_name` of the detector's own alerts."""
ALERT_TYPES = (AuditEventType.SUSPICIOUS_ACTIVITY.value, AuditEventType.SECURITY_VIOLATION.value)
NOT_OWN_SQL = f"NOT (coalesce(service_name, '') = '{DETECT_SERVICE}' AND event_type IN {ALERT_TYPES!r})"
"""The condition over the lake's `events` that leaves the detector's own alerts out, as `is_own` does."""
_EMPTY_MAP = msgspec.Raw(b"\x80")


class Observed(msgspec.Struct, kw_only=True, gc=False):
    event_type: str
    event_id: str = ""
    timestamp: datetime
    outcome: str = "success"
    action: str | None = None
    user_id: str | None = None
    source_ip: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    service_name: str | None = None
    details: msgspec.Raw = _EMPTY_MAP

    def detail(self, name: str) -> Any:
        """One value of `details` (None when absent), decoded on demand."""
        if self.details is _EMPTY_MAP:
            return None
        try:
            found = msgspec.msgpack.decode(self.details)
        except msgspec.DecodeError:
            return None
        return found.get(name) if isinstance(found, dict) else None


class ObservedFrame(msgspec.Struct, array_like=True, gc=False):
    """A WAL record: shipper.wire.Frame with only the fields above of its event."""

    emitter: str
    seq: int
    tx: int
    event: Observed


frame_decoder = msgspec.msgpack.Decoder(ObservedFrame)


def is_own(event: Observed) -> bool:
    """An alert the detector sent: never input to a rule, so that no alert can raise another."""
    return event.service_name == DETECT_SERVICE and event.event_type in ALERT_TYPES
