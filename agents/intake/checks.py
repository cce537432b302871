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
- Integers fit their columns in the lake and in SQL (both INTEGER for `status_code` and
  `schema_version`, BIGINT for the sizes: agents/sinks/parquet/schema.py), where msgpack carries up to
  64 bits unsigned and Python any size.
- `service_name` names a directory of the lake (`service=<name %-quoted>`, ondisk/lake_layout.py) no
  longer than NAME_MAX. The quoting makes any other name one safe path segment that DuckDB's hive
  partitioning reads back as it was (`/`, `..`, NUL, `*`, `%`, a newline...), so length is the only limit.
Such events were refused by the sink that could not hold them, and written by the others: refused here,
an event is in every sink or in none.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditship.agents.sinks.parquet.schema import out_of_range
from auditship.ondisk.lake_layout import partition_dir
from shipper.event import AuditEvent

MAX_NESTING = 64
"""Maps and lists within one of the event's maps: `details={"a": [1]}` nests 1 deep."""
_SCALARS = frozenset((str, int, float, bool, type(None), bytes, datetime))
# What msgspec's JSON encoder takes as a map key (bool is not one: exact types are compared).
_KEYS = frozenset((str, int, float, bytes))
_ALL_SCALARS = _SCALARS.issuperset
NAME_MAX = 255
"""Bytes of a directory name on Linux filesystems (the lake's own is checked again by its sink)."""


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
        if values and not _ALL_SCALARS(map(type, values.values())) and not _plain_or_lists(values):
            return _maps_refusal(event)
    if (unfit := out_of_range(event)) is not None:
        return f"event {event.event_id}: {unfit}"
    if event.service_name and (size := _service_dir_bytes(event.service_name)) > NAME_MAX:
        shown = f"{event.service_name[:40]!r}{'...' if len(event.service_name) > 40 else ''}"
        return (
            f"event {event.event_id}: service_name {shown} makes a lake directory name of {size} bytes "
            f"(%-quoted), over the {NAME_MAX} a directory name holds"
        )
    return None


@functools.lru_cache(maxsize=4096)
def _service_dir_bytes(service: str) -> int:
    """The length of the lake's directory name for `service` (ASCII: %-quoted). Services are few, and
    quoting costs a microsecond or two: remembered."""
    return len(partition_dir(Path(), "", service).name)


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


def _plain_or_lists(values: dict[str, Any]) -> bool:
    """Whether every value is a plain one or a list of plain ones (`"fields": ["diagnosis"]`): the
    usual map that is not flat, told in one pass, where the walk of _oddity costs a few times more."""
    for value in values.values():
        kind = type(value)
        if kind is list:
            if not _ALL_SCALARS(map(type, value)):
                return False
        elif kind not in _SCALARS:
            return False
    return True
