"""Retention in the SQL sink's table, against real SQLite, PostgreSQL and MariaDB: the rows older than
the horizon go, in batches, by the indexed timestamp; rows a legal hold matches stay, counted; the
removal is reported with the rows each run deleted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from auditship.agents import holds
from auditship.agents.config import AgentConfig
from auditship.agents.retention import Location, apply_retention
from auditship.agents.sinks.sql.config import SqlSinkConfig
from auditship.agents.sinks.sql.retention import remove_old_rows
from auditship.agents.sinks.sql.sink import SqlSink
from auditship.ondisk.data_layout import DataLayout
from tests.agents.sinks.entries import entries
from tests.databases import KINDS, Database, database

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HORIZON = NOW - timedelta(days=30)


@pytest.fixture(params=KINDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with database(request.param, tmp_path) as made:
        yield made


def filled(db: Database, data_dir: Path) -> SqlSinkConfig:
    """The table with 25 rows 40 days old (users user-1..25), 5 a day before the horizon's instant and 5
    a day after; returns the sink's settings."""
    settings = SqlSinkConfig(enabled=True, url=db.url, table=db.table)
    sink = SqlSink(settings, data_dir)
    sink.open()
    try:
        sink.write_batch(entries(range(1, 26), timestamp=NOW - timedelta(days=40)))
        sink.write_batch(entries(range(26, 31), timestamp=HORIZON - timedelta(seconds=1)))
        sink.write_batch(entries(range(31, 36), timestamp=HORIZON + timedelta(days=1)))
    finally:
        sink.close()
    return settings


def users(db: Database) -> set[str]:
    with db.admin.connect() as connection:
        return set(connection.execute(text(f"SELECT user_id FROM {db.table}")).scalars())


def test_rows_before_the_horizon_are_deleted_in_batches(db: Database, tmp_path: Path) -> None:
    """30 old rows in batches of 7: every one goes (the batches repeat until one comes back short), the
    5 newer rows stay, and a second run finds nothing."""
    settings = filled(db, tmp_path)
    dry = remove_old_rows(settings, tmp_path, HORIZON, dry_run=True)
    assert dry.removed == 30 and db.count() == 35
    done = remove_old_rows(settings, tmp_path, HORIZON, batch_rows=7)
    assert done.removed == 30 and db.table in done.where
    assert users(db) == {f"user-{n}" for n in range(31, 36)}
    assert remove_old_rows(settings, tmp_path, HORIZON).removed == 0


def test_rows_a_legal_hold_matches_are_kept_and_counted(db: Database, tmp_path: Path) -> None:
    """A hold on user-3 and one on resources 26-27 keep those rows (a NULL user or resource matches no
    hold, so rows without one still go); the result names the holds that matched, and a hold that
    matches nothing old is not named."""
    settings = filled(db, tmp_path)
    db.execute(f"UPDATE {db.table} SET user_id = NULL WHERE wal_seq = 4")
    placed = [
        holds.Hold(name="case-1", created=NOW, user_id="user-3"),
        holds.Hold(name="case-2", created=NOW, resource_type="document", resource_id="26"),
        holds.Hold(name="case-3", created=NOW, resource_id="27", since=HORIZON - timedelta(days=2)),
        holds.Hold(name="unused", created=NOW, user_id="user-33"),
    ]
    done = remove_old_rows(settings, tmp_path, HORIZON, placed, batch_rows=4)
    assert done.removed == 27 and done.held == 3 and done.holds == ("case-1", "case-2", "case-3")
    assert users(db) == {"user-3", "user-26", "user-27"} | {f"user-{n}" for n in range(31, 36)}


def test_a_missing_table_removes_nothing(tmp_path: Path) -> None:
    settings = SqlSinkConfig(enabled=True, url=f"sqlite:///{tmp_path / 'empty.db'}", table="never_made")
    assert remove_old_rows(settings, tmp_path, HORIZON).removed == 0


def test_the_table_has_an_index_on_timestamp(db: Database, tmp_path: Path) -> None:
    """What the batches' search by age relies on."""
    filled(db, tmp_path)
    indexes = inspect(db.admin).get_indexes(db.table)
    assert ["timestamp"] in [index["column_names"] for index in indexes]


def test_retention_reports_the_sql_rows_with_the_rest(db: Database, tmp_path: Path) -> None:
    """apply_retention, with the SQL sink on in the config, deletes the old rows too and reports them as a
    removal of kind sql with its row count; the rows a hold keeps are a second, held, record."""
    settings = filled(db, tmp_path)
    holds.add(DataLayout(tmp_path).holds, "matter-9", user_id="user-1", now=NOW)
    config = AgentConfig(data_dir=str(tmp_path))
    config.sinks.sql = settings
    where = Location.of_data_dir(tmp_path, config)
    found = apply_retention(where, timedelta(days=30), now=NOW)
    sql = [removal for removal in found if removal.kind == "sql"]
    assert [(r.rows, r.held is None, r.error) for r in sql] == [(29, True, None), (1, False, None)]
    assert sql[1].held is not None and "matter-9 (user_id=user-1)" in sql[1].held
    assert db.count() == 6


def test_a_database_that_cannot_be_reached_is_a_failed_removal_not_an_exception(tmp_path: Path) -> None:
    config = AgentConfig(data_dir=str(tmp_path))
    config.sinks.sql = SqlSinkConfig(
        enabled=True, url="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    )
    found = apply_retention(Location.of_data_dir(tmp_path, config), timedelta(days=30), now=NOW)
    assert [(r.kind, r.error is not None) for r in found] == [("sql", True)]
    assert found[0].error is not None and found[0].error.startswith("rows not deleted")
