"""Events and WAL entries for the sink and audit-query tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from auditship.agents.crypto import Keyring, encrypt_sensitive
from auditship.agents.sinks.base import Entry
from shipper.event import AuditEvent, AuditEventType, AuditSeverity

SECRET = "123-45-6789-TOPSECRET"
MIDDAY = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
"""Every event's time unless a test says otherwise: not the clock's, so that a batch never straddles two
dates (two Parquet partitions) when a test runs at midnight."""
WAL_ID = "0123456789abcdef0123456789abcdef"
"""The identity of the WAL the tests' entries come from, for the sinks that name records by it."""


def event(n: int, **fields: Any) -> AuditEvent:
    defaults: dict[str, Any] = {
        "event_type": AuditEventType.DATA_READ,
        "severity": AuditSeverity.MEDIUM,
        "user_id": f"user-{n}",
        "resource_type": "document",
        "resource_id": str(n),
        "message": f"read document {n}",
        "details": {"n": n},
        "timestamp": MIDDAY,
    }
    return AuditEvent(**(defaults | fields))


def entries(seqs: range, keyring: Keyring | None = None, **fields: Any) -> list[Entry]:
    """Entries as the runner hands them over: with `keyring`, `sensitive` already encrypted as the
    intake does it."""
    made = []
    for seq in seqs:
        built = event(seq, **fields)
        made.append(Entry(seq, encrypt_sensitive(built, keyring) if keyring else built))
    return made
