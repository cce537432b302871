"""What the typed decode of a frame leaves unchecked, and every sink relies on.

- `timestamp` is in UTC: the event model converts every timestamp as it is decoded, and one it cannot
  (year 1 at +14:00: its UTC instant falls outside Python's years 1-9999) stays as it came. Such an
  event is refused here, before a sink subtracts it from the clock or partitions by its UTC date. Every
  UTC instant of years 1-9999 fits DuckDB's timestamps and a `date=` partition of the lake.
- `details`, `changes` and `sensitive` (maps of anything) hold only what JSON can: every sink writes them
  as JSON (a file line, a Parquet or SQL JSON column, a SIEM payload), and msgspec's JSON encoder
  refuses a msgpack extension value or a map key that is not a string or a number.
- Those maps nest at most MAX_NESTING maps or lists deep. Decoders and encoders recurse once per level
  and stop at the interpreter's recursion limit, which counts the frames already on the stack: without
  a fixed bound an event the intake just managed to decode could fail in a sink whose stack is deeper.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shipper.event import AuditEvent

MAX_NESTING = 64
"""Maps and lists within one of the event's maps: `details={"a": [1]}` nests 1 deep."""
_SCALARS = frozenset((str, int, float, bool, type(None), bytes, datetime))
# What msgspec's JSON encoder takes as a map key (bool is not one: exact types are compared).
_KEYS = frozenset((str, int, float, bytes))
_ALL_SCALARS = _SCALARS.issuperset


def refusal(event: AuditEvent) -> str | None:
    """Why the intake refuses an event that decoded, or None to accept it."""
    timestamp = event.timestamp
    if timestamp.tzinfo is not UTC:
        return (
            f"event {event.event_id}: timestamp {timestamp.isoformat()} is outside years 1-9999 in UTC, "
            "which the sinks cannot hold"
        )
    for values in (event.details, event.changes, event.sensitive):
        # Nearly every map is flat, of plain values: this test is then all the cost.
        if values and not _ALL_SCALARS(map(type, values.values())):
            return _maps_refusal(event)
    return None


def _maps_refusal(event: AuditEvent) -> str | None:
    for name in ("details", "changes", "sensitive"):
        if (oddity := _oddity(getattr(event, name))) is not None:
            return f"event {event.event_id}: {name}: {oddity}"
    return None


def _oddity(values: dict[str, Any]) -> str | None:
    """What in this map JSON cannot hold, or how it nests too deep; None when it is plain.

    Level by level, not recursively, so that the check itself has no depth to run out of."""
    level: list[Any] = [values]
    for depth in range(MAX_NESTING + 1):
        below: list[Any] = []
        for container in level:
            if type(container) is dict:
                # The event's own maps have str keys (typed by the decoder); only deeper ones vary.
                odd_keys = {type(key) for key in container} - _KEYS if depth else ()
                if odd_keys:
                    # The type only, not the key: it may be a sensitive value, and reasons are logged.
                    return (
                        f"a map key of type {min(kind.__name__ for kind in odd_keys)}, which JSON cannot hold"
                    )
                members = container.values()
            else:
                members = container
            for value in members:
                kind = type(value)
                if kind is dict or kind is list:
                    below.append(value)
                elif kind not in _SCALARS:
                    return f"a value of type {kind.__name__}, which JSON cannot hold"
        if not below:
            return None
        level = below
    return f"nested more than {MAX_NESTING} maps or lists deep"
