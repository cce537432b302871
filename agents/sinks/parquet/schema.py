"""The lake's row schema, in one place: what the Parquet sink writes and what audit-query reads.

One row per event: every AuditEvent field (shipper/event.py), in its order, then the event's `wal_seq`.

    event_id, message, action, user_id, ... span_id, method, endpoint   VARCHAR (NULL when unset)
    event_type, severity, outcome                                        VARCHAR, the enum values
                                                                         ('user_login', 'high', 'failure')
    timestamp                                                            TIMESTAMPTZ, UTC
    status_code, schema_version                                          INTEGER
    duration_ms                                                          DOUBLE
    request_size, response_size, wal_seq                                 BIGINT
    details, changes, sensitive                                          JSON ('{}' when empty)
    compliance                                                           VARCHAR[] ([] when empty)
    sender                                                               JSON (NULL when unknown;
                                                                         parts written before it have
                                                                         no such column: read as NULL)

`sensitive` holds only the intake's envelopes (`aesgcm2:<key id>:...`), never a plaintext value. The
partition columns `date` (the UTC date of `timestamp`, YYYY-MM-DD) and `service` (`service_name`,
%-quoted, `_unknown` when unset) come from the directory names (ondisk/lake_layout.py), not from the
files.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shipper.event import AuditEvent

COLUMNS: dict[str, str] = {
    "event_type": "VARCHAR",
    "event_id": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
    "severity": "VARCHAR",
    "outcome": "VARCHAR",
    "message": "VARCHAR",
    "action": "VARCHAR",
    "user_id": "VARCHAR",
    "session_id": "VARCHAR",
    "source_ip": "VARCHAR",
    "user_agent": "VARCHAR",
    "resource_type": "VARCHAR",
    "resource_id": "VARCHAR",
    "service_name": "VARCHAR",
    "service_version": "VARCHAR",
    "environment": "VARCHAR",
    "node_id": "VARCHAR",
    "correlation_id": "VARCHAR",
    "request_id": "VARCHAR",
    "trace_id": "VARCHAR",
    "span_id": "VARCHAR",
    "method": "VARCHAR",
    "endpoint": "VARCHAR",
    "status_code": "INTEGER",
    "duration_ms": "DOUBLE",
    "request_size": "BIGINT",
    "response_size": "BIGINT",
    "details": "JSON",
    "changes": "JSON",
    "sensitive": "JSON",
    "compliance": "VARCHAR[]",
    "schema_version": "INTEGER",
    "sender": "JSON",
    "wal_seq": "BIGINT",
}
"""Column name -> DuckDB type, in the files' column order."""

EVENT_COLUMNS = [name for name in COLUMNS if name != "wal_seq"]
_BOUNDS = {"INTEGER": (-(2**31), 2**31 - 1), "BIGINT": (-(2**63), 2**63 - 1)}
# Python ints are unbounded; these event fields are not, in the lake.
_BOUNDED = [(name, *_BOUNDS[COLUMNS[name]]) for name in EVENT_COLUMNS if COLUMNS[name] in _BOUNDS]


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def event_struct() -> str:
    """The DuckDB type of an event as JSON, for `read_ndjson(columns=...)`."""
    return "STRUCT(" + ", ".join(f"{quote(name)} {COLUMNS[name]}" for name in EVENT_COLUMNS) + ")"


def select_list(event: str) -> str:
    """The SELECT list of a row from `event` (a STRUCT of event_struct()) and a `wal_seq` column.

    AuditEvent is encoded with omit_defaults, so a field at its default is absent from the JSON;
    COALESCE puts the event's own default back (severity 'info', details '{}', ...) instead of a NULL.
    """
    defaults = {field.name: _default(field) for field in msgspec.structs.fields(AuditEvent)}
    selected = []
    for name in EVENT_COLUMNS:
        value = f"{event}.{quote(name)}"
        default = defaults[name]
        if default is not None:
            value = f"COALESCE({value}, CAST({default} AS {COLUMNS[name]}))"
        selected.append(f"{value} AS {quote(name)}")
    return ", ".join([*selected, quote("wal_seq")])


def out_of_range(event: AuditEvent) -> str | None:
    """Why `event` does not fit the schema (an integer wider than its column), or None when it does."""
    for name, low, high in _BOUNDED:
        value = getattr(event, name)
        if value is not None and not low <= value <= high:
            return f"{name} = {value} does not fit the lake's {COLUMNS[name]} column ({low} to {high})"
    return None


def _default(field: msgspec.structs.FieldInfo) -> str | None:
    """The SQL literal of a field's default, or None when it has none worth restoring (None, or an id
    or timestamp made fresh for each event, which msgspec always encodes)."""
    value: Any = field.default
    if field.default_factory in (dict, list):
        value = field.default_factory()
    if value is msgspec.NODEFAULT or value is None:
        return None
    if isinstance(value, dict | list | str):
        return literal(value if isinstance(value, str) else msgspec.json.encode(value).decode())
    if isinstance(value, int | float):
        return repr(value)
    raise TypeError(f"AuditEvent.{field.name}: no SQL literal for a default of type {type(value).__name__}")
