"""classify(): the one decision between retrying a batch (ERRORED) and dead-lettering it (REJECTED), fed
the exceptions the drivers really raise."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg.errors
import pymysql.err
import pytest
from sqlalchemy import exc as sa

from auditship.agents.sinks.base import Delivery
from auditship.agents.sinks.sql.classify import classify, describe

ERRORED, REJECTED = Delivery.ERRORED, Delivery.REJECTED


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), ERRORED),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), ERRORED),
        (psycopg.errors.SerializationFailure("could not serialize access"), ERRORED),
        (psycopg.errors.DiskFull("could not extend file"), ERRORED),
        (psycopg.errors.InvalidPassword("password authentication failed"), ERRORED),
        (psycopg.OperationalError("connection failed: Connection refused"), ERRORED),
        (psycopg.errors.UndefinedTable('relation "audit_events" does not exist'), ERRORED),
        (psycopg.errors.InsufficientPrivilege("permission denied for table audit_events"), REJECTED),
        (psycopg.errors.NumericValueOutOfRange("integer out of range"), REJECTED),
        (psycopg.errors.UndefinedColumn('column "changes" does not exist'), REJECTED),
        (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), REJECTED),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_postgresql_errors_are_classified_by_sqlstate(error: Exception, expected: Delivery) -> None:
    assert classify(error) is expected
    assert classify(sa.DBAPIError.instance("INSERT", {}, error, psycopg.Error)) is expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (pymysql.err.OperationalError(2013, "Lost connection to server during query"), ERRORED),
        (pymysql.err.OperationalError(1927, "Connection was killed", sqlstate="70100"), ERRORED),
        (pymysql.err.OperationalError(1213, "Deadlock found", sqlstate="40001"), ERRORED),
        (pymysql.err.ProgrammingError(1146, "Table 'test.t' doesn't exist", sqlstate="42S02"), ERRORED),
        (pymysql.err.OperationalError(1142, "INSERT command denied", sqlstate="42000"), REJECTED),
        (pymysql.err.OperationalError(1054, "Unknown column 'changes'", sqlstate="42S22"), REJECTED),
        (pymysql.err.DataError(1406, "Data too long for column 'user_id'", sqlstate="22001"), REJECTED),
    ],
    ids=lambda value: str(value.args[0]) if isinstance(value, Exception) else "",
)
def test_mysql_errors_are_classified_by_sqlstate_not_by_pymysqls_class(
    error: Exception, expected: Delivery
) -> None:
    """PyMySQL calls "INSERT command denied" an OperationalError; its SQLSTATE says retrying cannot help."""
    assert classify(error) is expected


def test_sqlite_errors_without_a_sqlstate_are_classified_by_their_kind(tmp_path: Path) -> None:
    """A locked or missing table is retried; a read-only database and a constraint are refused."""
    path = tmp_path / "x.db"
    with sqlite3.connect(path) as writable:
        writable.execute("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    read_only = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    writable = sqlite3.connect(path)
    try:
        outcomes = [
            classify(_raised(read_only.execute, "INSERT INTO t VALUES ('a', 1)")),
            classify(_raised(writable.execute, "INSERT INTO t VALUES ('b', NULL)")),
            classify(_raised(writable.execute, "INSERT INTO missing VALUES (1)")),
        ]
    finally:
        read_only.close()
        writable.close()
    assert outcomes == [REJECTED, REJECTED, ERRORED]


def test_a_connection_sqlalchemy_found_invalidated_is_retried() -> None:
    error = sa.DBAPIError.instance(
        "INSERT", {}, psycopg.DataError("x"), psycopg.Error, connection_invalidated=True
    )
    assert classify(error) is ERRORED


def test_a_value_that_cannot_be_converted_is_refused() -> None:
    """A timestamp with no UTC equivalent, or an extension value JSON cannot hold (bound by SQLAlchemy)."""
    assert classify(OverflowError("date value out of range")) is REJECTED
    unsupported = TypeError("Encoding objects of type msgspec.msgpack.Ext is unsupported")
    assert classify(sa.StatementError("cannot bind", "INSERT", {}, unsupported)) is REJECTED


def test_an_unknown_failure_is_retried_rather_than_dead_lettered_on_a_guess() -> None:
    assert classify(sa.TimeoutError("QueuePool limit reached")) is ERRORED
    assert classify(pymysql.err.InternalError(999, "odd")) is ERRORED


def test_describe_gives_the_databases_message_without_the_rows() -> None:
    """SQLAlchemy's own message lists the parameters: whole events, which belong in no log line."""
    error = sa.DBAPIError.instance(
        "INSERT INTO t VALUES (%(user_id)s)",
        {"user_id": "alice@example.com"},
        psycopg.errors.NumericValueOutOfRange("integer out of range\nCONTEXT: COPY staging, line 3"),
        psycopg.Error,
    )
    assert describe(error) == "NumericValueOutOfRange: integer out of range"
    assert "alice" not in describe(error)


def _raised(call: object, *args: object) -> Exception:
    assert callable(call)
    with pytest.raises(sqlite3.Error) as raised:
        call(*args)
    return raised.value
