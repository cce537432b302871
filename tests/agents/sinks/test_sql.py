"""The SQL sink against real SQLite, PostgreSQL and MariaDB: every event once, refusals only when retrying
cannot help, and a database that goes away is a batch retried later."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from auditship.agents.config import parse_config
from auditship.agents.crypto import Keyring
from auditship.agents.errors import ConfigError, SinkError
from auditship.agents.sinks.base import Delivery, Entry, Refused
from auditship.agents.sinks.sql.config import SqlSinkConfig
from auditship.agents.sinks.sql.schema import (
    COPY_COLUMNS,
    JSON_COLUMNS,
    copy_row,
    entry_row,
    events_table,
    json_text,
)
from auditship.agents.sinks.sql.sink import SqlSink
from auditship.agents.wal.identity import wal_identity
from shipper.event import AuditEvent, AuditEventType, Sender
from tests.agents.sinks.entries import SECRET, entries, event
from tests.databases import KINDS, SERVERS, Database, database


@pytest.fixture(params=KINDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with database(request.param, tmp_path) as made:
        yield made


OpenSink = Callable[[str, str], SqlSink]


@pytest.fixture
def open_sink(tmp_path: Path) -> Iterator[OpenSink]:
    """open_sink(url, table) -> an opened SqlSink; closed at the end of the test."""
    sinks: list[SqlSink] = []

    def make(url: str, table: str) -> SqlSink:
        sink = SqlSink(SqlSinkConfig(enabled=True, url=url, table=table), tmp_path)
        sink.open()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.close()


def deliver(sink: SqlSink, batch: list[Entry], attempts: int = 3) -> Delivery | Refused:
    """Offer the batch again after ERRORED, as the runner does (without its backoff), a bounded number
    of times; the last outcome."""
    outcome: Delivery | Refused = Delivery.ERRORED
    for _ in range(attempts):
        outcome = sink.write_batch(batch)
        if outcome is not Delivery.ERRORED:
            break
    return outcome


def test_a_batch_lands_once_with_every_field_and_sensitive_values_only_as_ciphertext(
    db: Database, open_sink: OpenSink, tmp_path: Path
) -> None:
    """Each event is one row with its fields; the timestamp in UTC; details and sender as JSON; the
    envelope, never the secret, in `sensitive`."""
    keyring = Keyring.load_or_create(tmp_path / "keys")
    batch = entries(range(1, 51), keyring, sensitive={"ssn": SECRET}, compliance=["SOX"])
    stamped = AuditEvent(
        event_type=AuditEventType.DATA_UPDATE,
        timestamp=datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
        changes={"email": "new@example.com", "nested": {"n": [1, 2.5, None]}},
        status_code=201,
        duration_ms=45.25,
        sender=Sender(uid=1001, pid=7),
    )
    batch.append(Entry(51, stamped))
    sink = open_sink(db.url, db.table)
    assert sink.write_batch(batch) is Delivery.DELIVERED
    assert sorted(db.event_ids()) == sorted(entry.event.event_id for entry in batch)

    first = db.row(batch[0].event.event_id)
    assert first["event_type"] == "data_read"
    assert first["user_id"] == "user-1"
    assert (first["resource_type"], first["resource_id"]) == ("document", "1")
    assert _json(first["details"]) == {"n": 1}
    assert _json(first["compliance"]) == ["SOX"]
    envelope = _json(first["sensitive"])["ssn"]
    assert envelope == batch[0].event.sensitive["ssn"]
    assert envelope.startswith("aesgcm2:")
    assert SECRET not in str(first)

    row = db.row(stamped.event_id)
    moment = row["timestamp"]
    assert isinstance(moment, datetime | str)
    written = datetime.fromisoformat(str(moment)) if isinstance(moment, str) else moment
    assert written.replace(tzinfo=written.tzinfo or UTC) == datetime(
        2026, 3, 1, 10, 30, 15, 123456, tzinfo=UTC
    )
    assert _json(row["changes"]) == {"email": "new@example.com", "nested": {"n": [1, 2.5, None]}}
    assert (row["status_code"], row["duration_ms"], row["user_id"]) == (201, 45.25, None)
    assert _json(row["sender"]) == {"uid": 1001, "pid": 7}
    assert first["sender"] is None  # unknown: SQL NULL, not JSON null


def test_a_replayed_or_overlapping_batch_inserts_nothing_twice(
    db: Database, open_sink: OpenSink, tmp_path: Path
) -> None:
    """The same batch again (a retry, a crash before the cursor moved) and an overlapping one add only
    the WAL records not yet there."""
    batch = entries(range(1, 151))
    sink = open_sink(db.url, db.table)
    assert sink.write_batch(batch[:100]) is Delivery.DELIVERED
    assert sink.write_batch(batch[:100]) is Delivery.DELIVERED
    assert sink.write_batch(batch[50:]) is Delivery.DELIVERED
    assert db.count() == 150
    assert db.keys() == [(wal_identity(tmp_path / "wal"), n) for n in range(1, 151)]


def test_an_event_sent_first_under_another_events_id_does_not_keep_the_real_one_out(
    db: Database, open_sink: OpenSink
) -> None:
    """Issue 13: a forger who sends an event under the id of one to come (a leaked or replayed id) got
    the only row of that id. Rows are keyed by their WAL record now: both are kept, one event_id."""
    real = event(1, user_id="alice", message="real")
    forged = event(2, user_id="mallory", message="forged", event_id=real.event_id)
    sink = open_sink(db.url, db.table)
    assert sink.write_batch([Entry(7, forged)]) is Delivery.DELIVERED
    assert sink.write_batch([Entry(8, real), Entry(9, event(3))]) is Delivery.DELIVERED
    assert sink.write_batch([Entry(8, real)]) is Delivery.DELIVERED  # a resend is still written once
    with db.admin.connect() as connection:
        found = connection.execute(
            text(f"SELECT message, wal_seq FROM {db.table} WHERE event_id = :id ORDER BY wal_seq"),
            {"id": real.event_id},
        )
        assert [tuple(row) for row in found] == [("forged", 7), ("real", 8)]


def test_two_agents_writing_one_table_keep_each_others_records(
    db: Database, open_sink: OpenSink, tmp_path: Path
) -> None:
    """Each agent's WAL counts from 1; the WAL's identity keeps one agent's record 5 from being taken
    for another's."""
    batch = entries(range(1, 6))
    assert open_sink(db.url, db.table).write_batch(batch) is Delivery.DELIVERED
    other = SqlSink(SqlSinkConfig(enabled=True, url=db.url, table=db.table), tmp_path / "other")
    other.open()
    try:
        assert other.write_batch(batch) is Delivery.DELIVERED
    finally:
        other.close()
    assert db.count() == 10
    assert len({wal_id for wal_id, _ in db.keys()}) == 2


def test_a_table_of_the_old_schema_stops_the_sink_with_what_to_do(db: Database, open_sink: OpenSink) -> None:
    """A table an older auditship made (event_id its primary key) is not written to, nor changed: the
    worker ends with a SinkError naming the table and the way out, and the rows stay as they were."""
    db.execute(f"CREATE TABLE {db.table} (event_id VARCHAR(64) PRIMARY KEY, message TEXT)")
    db.execute(f"INSERT INTO {db.table} (event_id, message) VALUES ('old-1', 'kept')")
    sink = open_sink(db.url, db.table)
    with pytest.raises(SinkError) as raised:
        sink.write_batch(entries(range(1, 4)))
    message = str(raised.value)
    assert f"table {db.table} at " in message
    assert "its primary key is (event_id), not (wal_id, wal_seq)" in message
    assert "Set sinks.sql.table to a new name" in message
    assert f"rename {db.table} and its indexes ix_{db.table}_*" in message
    assert db.event_ids() == ["old-1"]
    # The way out the message gives: a new table name, and the sink writes.
    assert open_sink(db.url, f"{db.table}_v2").write_batch(entries(range(1, 4))) is Delivery.DELIVERED


def test_the_table_is_created_with_its_indexes(db: Database, open_sink: OpenSink) -> None:
    """Indexes on timestamp, user_id, event_type and (resource_type, resource_id); JSONB on PostgreSQL."""
    open_sink(db.url, db.table).write_batch(entries(range(1, 3)))
    inspector = inspect(db.admin)
    indexed = {tuple(index["column_names"]) for index in inspector.get_indexes(db.table)}
    assert {("timestamp",), ("user_id",), ("event_type",), ("resource_type", "resource_id")} <= indexed
    assert inspector.get_pk_constraint(db.table)["constrained_columns"] == ["wal_id", "wal_seq"]
    assert ("event_id",) in indexed
    if db.kind == "postgresql":
        types = {column["name"]: str(column["type"]) for column in inspector.get_columns(db.table)}
        assert [types[name] for name in ("details", "changes", "sensitive", "compliance")] == ["JSONB"] * 4
        assert types["timestamp"] == "TIMESTAMP" or "TIME ZONE" in types["timestamp"]


def test_the_table_has_a_column_for_every_event_field_and_the_wal_record() -> None:
    """A field added to AuditEvent without a column would fail every insert: this says so first."""
    expected = [*AuditEvent.__struct_fields__, "wal_id", "wal_seq"]
    assert sorted(events_table("t").columns.keys()) == sorted(expected)


def test_a_copy_row_holds_what_an_insert_row_holds() -> None:
    """PostgreSQL's COPY rows are built without entry_row's dict: column for column they are its
    values, JSON columns as JSON text, a timestamp assigned later in another zone in UTC."""
    full = event(
        7,
        changes={"role": ["user", "admin"]},
        compliance=["HIPAA", "SOX"],
        sensitive={"ssn": "aesgcm1:k:ciphertext"},
        sender=Sender(uid=1000, gid=1000, pid=42, user="app", executable="/usr/bin/app"),
        status_code=200,
        duration_ms=1.5,
    )
    full.timestamp = datetime(2026, 3, 10, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    entry = Entry(9, full)
    row = entry_row(entry, "w", naive_utc=False)
    expected = [
        json_text(row[name]) if name in JSON_COLUMNS and row[name] is not None else row[name]
        for name in COPY_COLUMNS
    ]
    copied = copy_row(entry, "w")
    assert copied == expected
    assert copied[COPY_COLUMNS.index("timestamp")].tzinfo is UTC
    # Plain strings, not the enums (psycopg would write an enum's name, not its value).
    assert {type(copied[COPY_COLUMNS.index(name)]) for name in ("event_type", "severity", "outcome")} == {str}
    assert copy_row(Entry(1, event(1)), "w")[COPY_COLUMNS.index("sender")] is None


def test_an_event_the_table_cannot_hold_is_refused_alone_with_the_reason(
    db: Database, open_sink: OpenSink
) -> None:
    """A uint64 counter does not fit a signed BIGINT anywhere: that event is Refused with the database's
    reason and the rest of its batch lands."""
    batch = entries(range(1, 11))
    too_big = Entry(11, event(11, request_size=2**64 - 1))
    batch.insert(5, too_big)
    outcome = open_sink(db.url, db.table).write_batch(batch)
    assert isinstance(outcome, Refused), outcome
    assert outcome.entries == [too_big]
    assert outcome.reasons[0].startswith(f"sql sink: {db.table}: ")
    assert db.count() == 10


def test_a_nul_character_postgresql_cannot_store_is_refused_alone(
    open_sink: OpenSink, tmp_path: Path
) -> None:
    """PostgreSQL text cannot hold U+0000 (psycopg says so before the server sees it)."""
    with database("postgresql", tmp_path) as db:
        batch = entries(range(1, 6))
        bad = Entry(6, event(6, message="before\x00after"))
        outcome = open_sink(db.url, db.table).write_batch([*batch, bad])
        assert isinstance(outcome, Refused), outcome
        assert outcome.entries == [bad]
        assert "NUL" in outcome.reasons[0]
        assert db.count() == 5


@pytest.mark.parametrize("kind", SERVERS)
def test_a_permission_error_refuses_the_batch_for_good_instead_of_retrying_forever(
    kind: str, open_sink: OpenSink, tmp_path: Path
) -> None:
    """A login that may only SELECT: every event is Refused with "permission denied"/"command denied",
    so the runner dead-letters them (and `audit-agent redeliver` sends them once the grant is fixed)."""
    with database(kind, tmp_path) as db:
        assert open_sink(db.url, db.table).write_batch(entries(range(1, 3))) is Delivery.DELIVERED
        batch = entries(range(3, 6))
        outcome = open_sink(db.login("ro", f"SELECT ON {db.table}"), db.table).write_batch(batch)
        assert isinstance(outcome, Refused), outcome
        assert outcome.entries == batch
        assert all("denied" in reason for reason in outcome.reasons), outcome.reasons
        assert db.count() == 2


@pytest.mark.parametrize("kind", SERVERS)
def test_a_login_that_may_not_create_the_table_refuses_the_batch_with_the_reason(
    kind: str, open_sink: OpenSink, tmp_path: Path
) -> None:
    """No CREATE privilege and no table: retrying cannot help, so the batch goes to dead letters."""
    with database(kind, tmp_path) as db:
        grant = {"postgresql": "CONNECT ON DATABASE test", "mariadb": "SELECT ON test.*"}[kind]
        batch = entries(range(1, 4))
        outcome = open_sink(db.login("nocreate", grant), db.table).write_batch(batch)
        assert isinstance(outcome, Refused), outcome
        assert outcome.entries == batch
        assert all("denied" in reason for reason in outcome.reasons), outcome.reasons


def test_an_unreachable_database_is_a_batch_retried_later_not_a_failed_worker(
    db: Database, open_sink: OpenSink, tmp_path: Path
) -> None:
    """open() connects to nothing; a batch for a database that does not answer is ERRORED."""
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = {
        "sqlite": f"sqlite:///{tmp_path / 'missing-directory' / 'audit.db'}",
        "postgresql": f"postgresql+psycopg://postgres@127.0.0.1:{port}/test?connect_timeout=2",
        "mariadb": f"mysql+pymysql://root@127.0.0.1:{port}/test?connect_timeout=2",
    }[db.kind]
    sink = open_sink(url, db.table)
    assert sink.write_batch(entries(range(1, 4))) is Delivery.ERRORED


@pytest.mark.parametrize("kind", SERVERS)
def test_after_its_connection_is_killed_the_sink_reconnects_and_loses_nothing(
    kind: str, open_sink: OpenSink, tmp_path: Path
) -> None:
    """pg_terminate_backend / KILL between two batches: the next batch is ERRORED at most once (it finds
    its connection cut), then lands on a new one."""
    with database(kind, tmp_path) as db:
        sink = open_sink(db.url, db.table)
        assert sink.write_batch(entries(range(1, 51))) is Delivery.DELIVERED
        killed, _ = db.cut_sink_connections()
        assert killed >= 1
        assert deliver(sink, entries(range(51, 101))) is Delivery.DELIVERED
        assert db.count() == 100


def test_a_table_dropped_under_the_sink_is_created_again(db: Database, open_sink: OpenSink) -> None:
    """The batch after the DROP is ERRORED at most once, then lands in a new table."""
    sink = open_sink(db.url, db.table)
    assert sink.write_batch(entries(range(1, 11))) is Delivery.DELIVERED
    db.execute(f"DROP TABLE {db.table}")
    assert deliver(sink, entries(range(11, 21)), attempts=2) is Delivery.DELIVERED
    assert db.count() == 10


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mssql+pyodbc://host/db", "supports postgresql, mysql, mariadb, sqlite, not 'mssql'"),
        ("mysql+mysqldb://host/db", "No module named 'MySQLdb'"),
        ("not a url", "Could not parse"),
    ],
)
def test_a_url_the_sink_cannot_use_fails_open_with_a_message_naming_it(
    url: str, problem: str, tmp_path: Path
) -> None:
    sink = SqlSink(SqlSinkConfig(enabled=True, url=url), tmp_path)
    with pytest.raises(SinkError, match=r"sinks\.sql\.url") as raised:
        sink.open()
    assert problem in str(raised.value)


def test_the_default_database_is_sqlite_in_the_data_directory_owner_only(tmp_path: Path) -> None:
    sink = SqlSink(SqlSinkConfig(enabled=True), tmp_path)
    sink.open()
    try:
        assert sink.write_batch(entries(range(1, 4))) is Delivery.DELIVERED
    finally:
        sink.close()
    assert (tmp_path / "audit.db").stat().st_mode & 0o777 == 0o600


def _json(value: object) -> Any:
    """A JSON column as Python: drivers return it decoded (PostgreSQL) or as text (SQLite, MariaDB)."""
    return json.loads(value) if isinstance(value, str) else value


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[sinks.sql]\ntable = "audit-events"',
            "sinks.sql.table: expected 1 to 48 letters, digits or _, not starting with a digit, "
            "got 'audit-events'",
        ),
        ("[sinks.sql]\nbatch_size = 0", "sinks.sql.batch_size: must be positive, got 0"),
        (
            '[sinks.sql]\nurl = "oracle://scott:tiger@db/orcl"',
            "sinks.sql.url: the SQL sink supports postgresql, mysql, mariadb, sqlite, not 'oracle'",
        ),
        ('[sinks.sql]\nurl = "user:secret@db"', "sinks.sql.url: Could not parse SQLAlchemy URL"),
        (
            '[sinks.sql]\nurl = "mysql://root@db/audit"',
            "sinks.sql.url: its driver 'mysqldb' is not installed",
        ),
    ],
)
def test_a_sql_setting_the_sink_cannot_use_stops_the_agent_with_the_key_named(
    toml: str, message: str
) -> None:
    """Found when the config is read (`audit-agent check-config`), not by a worker failing later; the
    message never repeats the URL, which may hold a password."""
    with pytest.raises(ConfigError) as raised:
        parse_config(toml, "agent.toml")
    assert str(raised.value).startswith(f"agent.toml: {message}")
    assert "secret" not in str(raised.value)
    assert "tiger" not in str(raised.value)


def test_an_entry_under_a_seq_the_table_holds_for_another_event_is_refused_with_both_ids(
    db: Database, open_sink: OpenSink
) -> None:
    """The WAL issued seqs 4-6 again (its reservation lost with its tail): the second events under them
    are refused to dead letters naming both event ids, not skipped as stored, by a sink that starts
    knowing only the table; the stored rows stay and the new seqs land. A batch offered again with its
    own events is still skipped silently."""
    first = entries(range(1, 7))
    assert open_sink(db.url, db.table).write_batch(first) is Delivery.DELIVERED
    sink = open_sink(db.url, db.table)
    assert sink.write_batch(first[2:]) is Delivery.DELIVERED
    again = [Entry(n, event(100 + n)) for n in range(4, 10)]

    outcome = sink.write_batch(again)

    assert isinstance(outcome, Refused), outcome
    assert outcome.entries == again[:3]
    assert outcome.reasons[0] == (
        f"sql sink: WAL seq 4 is stored in {db.table} for event {first[3].event.event_id}, "
        f"this is event {again[0].event.event_id}"
    )
    assert db.count() == 9
