"""`Finding`: what a rule reports, the same from the streaming detector and from the lake, and the one
rule both apply against repeats: after an alert for a key, none for the same key within its cooldown."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec


class Finding(msgspec.Struct, kw_only=True):
    rule: str
    key: dict[str, str]
    """The user, address or service the rule counted under, by field: {"source_ip": "203.0.113.9"}."""
    window_s: float
    window_start: datetime
    """The time of the first event counted."""
    window_end: datetime
    """The time of the event that completed the pattern."""
    count: float
    """What the rule measured: events, distinct users or resources, records exported."""
    threshold: float
    """What `count` had to reach."""
    baseline: float | None = None
    """For rules against the key's own history: its usual value per window."""
    event_ids: list[str]
    """The events that triggered it, oldest first (at most `detect.max_event_ids`)."""
    lsn: int = 0
    """The WAL seq of the completing event (streaming only; 0 from the lake)."""


def due(last_alert: float, ts: float, cooldown_s: float) -> bool:
    """Whether an alert at `ts` for a key last alerted at `last_alert` goes out."""
    return ts >= last_alert + cooldown_s


def moment(ts: float) -> datetime:
    """An epoch time as the aware UTC datetime an event carries."""
    return datetime.fromtimestamp(ts, UTC)
