"""An envelope opens after its event has been through every store: the event hash the intake bound is
the one each reader computes from what it reads back (the file sink's JSON Lines, the lake's Parquet,
SQLite, PostgreSQL and MariaDB rows), whatever JSON did to the details' numbers, times and bytes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import text

from auditship.agents.crypto import Keyring, decrypt_sensitive, encrypt_sensitive
from auditship.agents.crypto.blinding import load_blinding
from auditship.agents.sinks.base import Delivery, Entry
from auditship.agents.sinks.file.config import FileSinkConfig
from auditship.agents.sinks.file.sink import FileSink
from auditship.agents.sinks.parquet.config import ParquetSinkConfig
from auditship.agents.sinks.parquet.sink import ParquetSink
from auditship.agents.sinks.sql.config import SqlSinkConfig
from auditship.agents.sinks.sql.sink import SqlSink
from auditship.ondisk.errors import DecryptionError
from auditship.ondisk.event_hash import event_hash
from auditship.ondisk.lines import decode_json_line
from auditship.query.filters import EventFilter
from auditship.query.search import search
from shipper.event import AuditEvent, AuditEventType, Sender
from tests.databases import KINDS, Database, database

SECRETS = {"ssn": "123-45-6789", "card": {"number": "4111111111111111", "cvv": 123}}
AWKWARD = {
    "large": 1e20,  # JSONB prints it as an integer, DuckDB as 100000000000000000000.0
    "integral": 1.0,
    "tenth": 0.1,
    "not_a_number": float("nan"),  # JSON has none: null
    "when": datetime(2026, 3, 1, 9, 0, 0, 250, tzinfo=UTC),  # text in JSON
    "raw": b"\x00\x01\xff",  # base64 in JSON
    "widest": 2**63 - 1,
    "nested": {"zeta": [1, 2.5, None, {"é": "ünïcode"}], "alpha": True},
}


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return Keyring.load_or_create(tmp_path / "keys")


def sealed(keyring: Keyring, seq: int = 1) -> AuditEvent:
    """An event as the intake stores it: sender stamped, then its sensitive values sealed (the ssn with a
    blind index)."""
    event = AuditEvent(
        event_type=AuditEventType.DATA_UPDATE,
        timestamp=datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
        user_id="alice",
        service_name="billing",
        status_code=201,
        duration_ms=45.25,
        details=AWKWARD | {"seq": seq},
        changes={"email": "new@example.com"},
        compliance=["PCI", "SOX"],
        sensitive=dict(SECRETS),
        sender=Sender(uid=1001, pid=7, user="svc"),
    )
    return encrypt_sensitive(event, keyring, load_blinding(keyring.keys_dir, ["ssn"]))


def assert_opens(read_back: AuditEvent, written: AuditEvent, keyring: Keyring) -> None:
    assert event_hash(read_back) == event_hash(written)
    assert decrypt_sensitive(read_back, keyring).sensitive == SECRETS


def test_the_hash_ignores_what_json_does_to_values_and_nothing_else() -> None:
    """Integral floats, NaN, datetimes, bytes and key order hash as JSON keeps them; a changed value
    does not hash alike."""
    event = AuditEvent(event_type=AuditEventType.DATA_READ, details=AWKWARD)
    through_json = msgspec.json.decode(msgspec.json.encode(event), type=AuditEvent)
    reordered = msgspec.structs.replace(event, details=dict(reversed(list(AWKWARD.items()))))
    changed = msgspec.structs.replace(event, details=AWKWARD | {"tenth": 0.2})
    no_duration = msgspec.json.decode(
        msgspec.json.encode(msgspec.structs.replace(event, duration_ms=float("nan"))), type=AuditEvent
    )
    assert no_duration.duration_ms is None
    assert event_hash(no_duration) == event_hash(msgspec.structs.replace(event, duration_ms=float("nan")))

    assert event_hash(through_json) == event_hash(event) == event_hash(reordered)
    assert event_hash(changed) != event_hash(event)


def test_through_the_file_sink(keyring: Keyring, tmp_path: Path) -> None:
    written = sealed(keyring)
    sink = FileSink(FileSinkConfig(), tmp_path / "data", keyring)
    sink.open()
    assert sink.write_batch([Entry(1, written)]) is Delivery.DELIVERED
    sink.close()

    (line,) = (tmp_path / "data" / "files" / "audit.jsonl").read_bytes().splitlines()
    _, read_back = decode_json_line(line, AuditEvent)
    assert_opens(read_back, written, keyring)


def test_through_the_file_sink_that_writes_plaintext(keyring: Keyring, tmp_path: Path) -> None:
    """The plaintext opt-out opens the envelopes the intake sealed: same hash in the sink as there."""
    sink = FileSink(FileSinkConfig(encrypt_sensitive=False), tmp_path / "data", keyring)
    sink.open()
    assert sink.write_batch([Entry(1, sealed(keyring))]) is Delivery.DELIVERED
    sink.close()

    (line,) = (tmp_path / "data" / "files" / "audit.jsonl").read_bytes().splitlines()
    assert decode_json_line(line, AuditEvent)[1].sensitive == SECRETS


def test_through_the_lake(keyring: Keyring, tmp_path: Path) -> None:
    written = [sealed(keyring, seq) for seq in (1, 2)]
    sink = ParquetSink(ParquetSinkConfig(), tmp_path / "data", keyring)
    sink.open()
    assert sink.write_batch([Entry(seq, event) for seq, event in enumerate(written, 1)]) is Delivery.DELIVERED
    sink.close()

    found = dict(search(tmp_path / "data" / "lake", EventFilter(), limit=None))
    assert sorted(found) == [1, 2]
    for seq, event in enumerate(written, 1):
        assert_opens(found[seq], event, keyring)


@pytest.fixture(params=KINDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with database(request.param, tmp_path) as made:
        yield made


def row_event(row: dict[str, Any]) -> AuditEvent:
    """A row of the events table as its event: JSON columns decoded (text on SQLite and MariaDB, already
    decoded from PostgreSQL's JSONB), NULL as the field's default."""
    fields = {
        name: value for name, value in row.items() if value is not None and name not in ("wal_id", "wal_seq")
    }
    for name in ("details", "changes", "sensitive", "compliance", "sender"):
        if isinstance(fields.get(name), str):
            fields[name] = json.loads(fields[name])
    return msgspec.convert(fields, AuditEvent)


def store_in_sql(db: Database, event: AuditEvent, tmp_path: Path) -> None:
    sink = SqlSink(SqlSinkConfig(enabled=True, url=db.url, table=db.table), tmp_path)
    sink.open()
    try:
        assert sink.write_batch([Entry(1, event)]) is Delivery.DELIVERED
    finally:
        sink.close()


def test_through_sql(db: Database, keyring: Keyring, tmp_path: Path) -> None:
    written = sealed(keyring)
    store_in_sql(db, written, tmp_path)

    assert_opens(row_event(db.row(written.event_id)), written, keyring)


def test_an_edited_row_does_not_open(db: Database, keyring: Keyring, tmp_path: Path) -> None:
    """UPDATE of a non-sensitive column in the database: the row's envelopes fail, naming the event."""
    written = sealed(keyring)
    store_in_sql(db, written, tmp_path)
    with db.admin.begin() as connection:
        connection.execute(text(f"UPDATE {db.table} SET user_id = 'mallory'"))

    with pytest.raises(DecryptionError, match=f"event {written.event_id}: sensitive field"):
        decrypt_sensitive(row_event(db.row(written.event_id)), keyring)
