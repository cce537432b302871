"""`SearchFilters`: the keywords of `AuditLogger.search_events`, which the lake reader (shipper.readers)
takes as they are."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypedDict

from shipper.event import AuditEventType, AuditOutcome, AuditSeverity


class SearchFilters(TypedDict, total=False):
    """The keywords of `AuditLogger.search_events`; every filter given must hold, None is no filter."""

    event_type: AuditEventType | str | Sequence[AuditEventType | str] | None
    """One type, or several: any of them."""
    user_id: str | None
    start_time: datetime | None
    """Inclusive; a naive datetime is local time."""
    end_time: datetime | None
    """Exclusive."""
    limit: int | None
    """At most this many, the newest; None: all."""
    resource_type: str | None
    resource_id: str | None
    source_ip: str | None
    service_name: str | None
    outcome: AuditOutcome | str | Sequence[AuditOutcome | str] | None
    severity: AuditSeverity | str | None
    """A minimum: HIGH finds HIGH and CRITICAL events."""
    text: str | None
    """A case-insensitive substring of the message or the action."""
    sensitive: Mapping[str, object] | None
    """Sensitive field -> value: the events whose field holds it, found by the blind index the agent
    stores for the fields `[encryption] blind_index` names, without decrypting anything."""
    keys_dir: Path | None
    """Where the blind index key is (for `sensitive`); default `<data_dir>-keys`."""
