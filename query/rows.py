"""Lake rows back into AuditEvents, and events printed as `search` and `tail` show them.

JSON output is the file sink's record (ondisk/lines.py), so `audit-query cat` and `search` print
the same line for the same event. The table shows the columns a person scans; CSV has every field.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC
from typing import Any, TextIO

import duckdb
import msgspec

from auditship.ondisk.lines import encode_json
from auditship.query.output import OutputFormat, text, write_rows, write_table
from shipper.event import AuditEvent

Found = tuple[int, AuditEvent]
"""An event and its WAL sequence number."""

FETCH_ROWS = 1000
_FIELDS = frozenset(AuditEvent.__struct_fields__)
_JSON_FIELDS = frozenset({"details", "changes", "sensitive", "sender"})
CSV_COLUMNS = (*AuditEvent.__struct_fields__, "wal_seq")


def fetch_events(cursor: duckdb.DuckDBPyConnection, count: int = FETCH_ROWS) -> list[Found]:
    """The next `count` rows of `cursor` (a `SELECT *` over `events`) as events; [] at the end."""
    names = [column[0] for column in cursor.description or ()]
    return [to_event(names, row) for row in cursor.fetchmany(count)]


def iter_events(cursor: duckdb.DuckDBPyConnection) -> Iterator[Found]:
    while found := fetch_events(cursor):
        yield from found


def to_event(names: Sequence[str], row: Sequence[Any]) -> Found:
    """A row as its event: NULL is the field's default, the JSON columns are decoded, columns that are no
    field of this version's AuditEvent (the Hive `date` and `service`, fields of a newer version) are left."""
    fields: dict[str, Any] = {}
    seq = 0
    for name, value in zip(names, row, strict=True):
        if value is None:
            continue
        if name == "wal_seq":
            seq = value
        elif name in _JSON_FIELDS:
            fields[name] = msgspec.json.decode(value)
        elif name == "timestamp":
            fields[name] = value.astimezone(UTC)
        elif name in _FIELDS:
            fields[name] = value
    return seq, msgspec.convert(fields, AuditEvent)


TABLE_COLUMNS = ("time", "severity", "type", "outcome", "service", "user", "resource", "ip", "message")


class EventPrinter:
    """Prints events in one format, in as many pieces as they come (`tail -f`): the CSV header and the
    table's once, the table's columns kept aligned from piece to piece."""

    def __init__(self, output_format: OutputFormat, out: TextIO) -> None:
        self.output_format = output_format
        self.out = out
        self.printed = 0
        self._widths: list[int] | None = None

    def print(self, found: Iterable[Found]) -> None:
        found = list(found)
        if self.output_format == "json":
            self.out.writelines(encode_json(seq, event).decode() for seq, event in found)
        elif self.output_format == "csv":
            rows = (
                [*(getattr(event, name) for name in AuditEvent.__struct_fields__), seq]
                for seq, event in found
            )
            write_rows(CSV_COLUMNS, rows, "csv", self.out, header=self.printed == 0)
        elif found or self._widths is None:
            self._widths = write_table(
                TABLE_COLUMNS, [_table_row(event) for _, event in found], self.out, self._widths
            )
        self.printed += len(found)
        self.out.flush()


def _table_row(event: AuditEvent) -> list[str]:
    resource = "/".join(part for part in (event.resource_type, event.resource_id) if part is not None)
    return [
        event.timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        event.severity,
        event.event_type,
        event.outcome,
        text(event.service_name),
        text(event.user_id),
        resource,
        text(event.source_ip),
        event.message,
    ]
