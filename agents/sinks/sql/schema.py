"""The events table: one column per AuditEvent field and the record's place in the WAL, and an entry as
a row of it.

The key is (wal_id, wal_seq): the identity of the agent's WAL and the record's LSN in it
(agents/wal/identity.py), what the agent assigns, never what a sender chose. A batch offered again is
stored once; two events with one event_id (a resend by its emitter is deduplicated by the intake, so
these come from different senders, one of them forging) are both kept; `event_id` is indexed, not
unique. Agents sharing a database have WALs of different ids, so their rows never collide.

Columns keep the event's names. Identifiers and names that are searched (user_id, resource_type,
service_name...) are bounded VARCHARs, so MySQL can index them; free text (message, user_agent,
endpoint, action) is TEXT. `details`, `changes`, `compliance` and `sender` (who sent the event, as
the kernel named them: uid, gid, pid, user, executable; NULL when unknown) are JSON (JSONB on
PostgreSQL);
`sensitive` is JSON too, holding only the intake's envelopes (ciphertext), never a plaintext value.
Timestamps are UTC: TIMESTAMPTZ on PostgreSQL, DATETIME(6) holding UTC on MySQL/MariaDB and SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql, postgresql

from auditship.agents.sinks.base import Entry
from shipper.event import AuditEvent

_JSON = JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQL NULL, not JSON null, for an event without one (a spooled or TCP frame's sender may be absent).
_JSON_OR_NULL = JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
_TIMESTAMP = DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_NAME = String(255)

JSON_COLUMNS = ("details", "changes", "sensitive", "compliance", "sender")
KEY_COLUMNS = ("wal_id", "wal_seq")

_json = msgspec.json.Encoder()
_encode = _json.encode


def json_text(value: Any) -> str:
    """A JSON column's value as text (the engine's serializer, and COPY's): msgspec is several times
    faster than the json module, and writes bytes and datetimes that it would refuse."""
    return _json.encode(value).decode()


def events_table(name: str) -> Table:
    """The table `name`, with the indexes that searches by time, user, type and resource need."""
    return Table(
        name,
        MetaData(),
        Column("event_id", String(64), nullable=False),
        Column("timestamp", _TIMESTAMP, nullable=False),
        Column("event_type", String(32), nullable=False),
        Column("severity", String(16), nullable=False),
        Column("outcome", String(16), nullable=False),
        Column("message", Text, nullable=False),
        Column("action", Text),
        Column("user_id", _NAME),
        Column("session_id", _NAME),
        Column("source_ip", String(64)),
        Column("user_agent", Text),
        Column("resource_type", _NAME),
        Column("resource_id", _NAME),
        Column("service_name", _NAME),
        Column("service_version", _NAME),
        Column("environment", _NAME),
        Column("node_id", _NAME),
        Column("correlation_id", _NAME),
        Column("request_id", _NAME),
        Column("trace_id", _NAME),
        Column("span_id", _NAME),
        Column("method", String(16)),
        Column("endpoint", Text),
        Column("status_code", Integer),
        Column("duration_ms", Double),
        Column("request_size", BigInteger),
        Column("response_size", BigInteger),
        *(Column(column, _JSON, nullable=False) for column in JSON_COLUMNS if column != "sender"),
        Column("schema_version", Integer, nullable=False),
        Column("sender", _JSON_OR_NULL),
        Column("wal_id", String(32), primary_key=True),
        Column("wal_seq", BigInteger, primary_key=True, autoincrement=False),
        Index(f"ix_{name}_event_id", "event_id"),
        Index(f"ix_{name}_timestamp", "timestamp"),
        Index(f"ix_{name}_user_id", "user_id"),
        Index(f"ix_{name}_event_type", "event_type"),
        Index(f"ix_{name}_resource", "resource_type", "resource_id"),
        # utf8mb4, whatever the server's default: an audit record must not lose characters.
        mysql_charset="utf8mb4",
    )


def outdated(table: Table, columns: list[str], key: list[str]) -> str | None:
    """What makes a table found with these columns and primary key not `table` (one made before rows
    were keyed by their WAL record had event_id as its key), or None."""
    if key != list(KEY_COLUMNS):
        return f"its primary key is ({', '.join(key)}), not ({', '.join(KEY_COLUMNS)})"
    missing = [column.name for column in table.columns if column.name not in columns]
    return f"it has no column {', '.join(missing)}" if missing else None


def entry_row(entry: Entry, wal_id: str, *, naive_utc: bool) -> dict[str, Any]:
    """The entry as a row: its event's fields, enums as their values, the timestamp in UTC (without
    tzinfo for the dialects whose DATETIME has no time zone), and its WAL record. Raises ValueError or
    OverflowError for a timestamp that has no UTC equivalent (0001-01-01 with a positive offset)."""
    event = entry.event
    row = msgspec.structs.asdict(event)
    row["wal_id"] = wal_id
    row["wal_seq"] = entry.lsn
    row["event_type"] = event.event_type.value
    row["severity"] = event.severity.value
    row["outcome"] = event.outcome.value
    row["timestamp"] = _utc(event.timestamp, naive=naive_utc)
    return row


COPY_COLUMNS = (*AuditEvent.__struct_fields__, *KEY_COLUMNS)
"""The table's columns in the order copy_row gives their values: the event's fields as AuditEvent
declares them (msgspec.structs.astuple's order), then its WAL record."""
_ENUMS_AT = tuple(COPY_COLUMNS.index(name) for name in ("event_type", "severity", "outcome"))
_TIMESTAMP_AT = COPY_COLUMNS.index("timestamp")
_JSON_AT = tuple(COPY_COLUMNS.index(name) for name in JSON_COLUMNS)


def copy_row(entry: Entry, wal_id: str) -> list[Any]:
    """The entry as entry_row has it (with an aware timestamp), as values in COPY_COLUMNS' order, its
    JSON columns as JSON text: what COPY takes, built without a dict (a third of the sink's CPU)."""
    event = entry.event
    row = list(msgspec.structs.astuple(event))
    for position in _ENUMS_AT:
        row[position] = row[position]._value_  # .value is a property, six times slower
    moment = event.timestamp
    if moment.tzinfo is not UTC:  # AuditEvent keeps it in UTC, unless something assigned it since
        row[_TIMESTAMP_AT] = _utc(moment, naive=False)
    for position in _JSON_AT:  # json_text, inlined: this loop is a third of the function
        value = row[position]
        if value is not None:
            row[position] = _encode(value).decode()
    row += (wal_id, entry.lsn)
    return row


def _utc(moment: datetime, *, naive: bool) -> datetime:
    # An event decoded without an offset was stamped in UTC by convention (utc_now); take it as such.
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.replace(tzinfo=None) if naive else aware
