"""How a batch reaches the table: each dialect's conflict-ignoring INSERT, or COPY on PostgreSQL.

Every path skips a WAL record the table already holds (its key, (wal_id, wal_seq): schema.py), so a
batch offered again (after a crash, a commit whose acknowledgement was lost, or any retry) inserts
nothing twice, and an event whose event_id another row has is stored all the same:

    PostgreSQL     INSERT ... ON CONFLICT (wal_id, wal_seq) DO NOTHING
    SQLite         INSERT ... ON CONFLICT (wal_id, wal_seq) DO NOTHING; not INSERT OR IGNORE, which
                   would also swallow NOT NULL violations
    MySQL/MariaDB  INSERT ... ON DUPLICATE KEY UPDATE wal_seq = wal_seq (the key is the table's only
                   unique one); not INSERT IGNORE, which turns "data too long" into a warning and stores
                   the value cut short

With psycopg, PostgreSQL batches go through COPY, straight into the table under a savepoint. COPY has
no conflict clause: when the table holds one of the batch's records already (a batch offered again; rare),
the unique violation rolls back to the savepoint, and the rows are copied into a temporary staging table
(one per connection, emptied at each commit) and moved with INSERT ... SELECT ... ON CONFLICT DO
NOTHING. Either way the primary key lets no record in twice. The straight COPY is about twice the rows/s of
executemany, and a quarter more than always going through the staging table (`python -m bench sinks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Connection, Engine, MetaData, Table, event, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.schema import CreateTable

from auditship.agents.sinks.base import Entry
from auditship.agents.sinks.sql.schema import COPY_COLUMNS, KEY_COLUMNS, copy_row, entry_row

STAGING_TABLE = "auditship_staging"
UNIQUE_VIOLATION = "23505"


class RowWriter:
    """Batches as one executemany of the conflict-ignoring INSERT; the only path for single events."""

    def __init__(self, engine: Engine, table: Table, wal_id: str) -> None:
        self._naive_utc = engine.dialect.name != "postgresql"
        self._insert = _conflict_ignoring_insert(table, engine.dialect.name)
        self._wal_id = wal_id

    def write(self, connection: Connection, entries: Sequence[Entry]) -> None:
        connection.execute(self._insert, [self._row(entry) for entry in entries])

    def write_one(self, connection: Connection, entry: Entry) -> None:
        connection.execute(self._insert, self._row(entry))

    def _row(self, entry: Entry) -> dict[str, Any]:
        return entry_row(entry, self._wal_id, naive_utc=self._naive_utc)


class PostgresCopyWriter(RowWriter):
    def __init__(self, engine: Engine, table: Table, wal_id: str) -> None:
        super().__init__(engine, table, wal_id)
        quote = engine.dialect.identifier_preparer.quote
        names = [column.name for column in table.columns]
        staging = Table(
            STAGING_TABLE,
            MetaData(),
            *(Column(column.name, column.type) for column in table.columns),
            prefixes=["TEMPORARY"],
            postgresql_on_commit="DELETE ROWS",
        )
        columns = ", ".join(quote(name) for name in COPY_COLUMNS)
        target = engine.dialect.identifier_preparer.format_table(table)
        self._copy_into_table = f"COPY {target} ({columns}) FROM STDIN"
        self._copy_into_staging = f"COPY {STAGING_TABLE} ({columns}) FROM STDIN"
        self._move = (
            postgresql.insert(table)
            .from_select(names, select(staging))
            .on_conflict_do_nothing(index_elements=KEY_COLUMNS)
        )
        create_staging = str(CreateTable(staging, if_not_exists=True).compile(dialect=engine.dialect))

        # Temporary tables live as long as their connection: each new one (the first, or one made after
        # the server dropped the last) gets its own.
        @event.listens_for(engine, "connect")
        def _create_staging(dbapi_connection: Any, _record: object) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(create_staging)
            dbapi_connection.commit()

    def write(self, connection: Connection, entries: Sequence[Entry]) -> None:
        wal_id = self._wal_id
        rows = [copy_row(entry, wal_id) for entry in entries]
        try:
            with connection.begin_nested():
                _copy(connection, self._copy_into_table, rows)
        except connection.dialect.loaded_dbapi.Error as exc:
            if getattr(exc, "sqlstate", None) != UNIQUE_VIOLATION:
                raise
            # Some record is there already (the batch is offered again): only through the staging table
            # can the rest go in without it.
            _copy(connection, self._copy_into_staging, rows)
            connection.execute(self._move)


def _copy(connection: Connection, statement: str, rows: list[list[Any]]) -> None:
    driver_connection: Any = connection.connection.driver_connection
    with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def writer_for(engine: Engine, table: Table, wal_id: str) -> RowWriter:
    """The fastest writer the engine's driver allows, after setting up its connections. The dialect is
    one of shipper.destinations.SQL_DIALECTS (the config and SqlSink.open check)."""
    name = engine.dialect.name
    if name in ("mysql", "mariadb"):
        event.listen(engine, "connect", _strict_mysql)
    elif name == "sqlite":
        event.listen(engine, "connect", _sqlite_wal)
    elif name == "postgresql" and engine.dialect.driver == "psycopg":
        return PostgresCopyWriter(engine, table, wal_id)
    return RowWriter(engine, table, wal_id)


def _conflict_ignoring_insert(table: Table, dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=KEY_COLUMNS)
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=KEY_COLUMNS)
    return mysql.insert(table).on_duplicate_key_update(wal_seq=table.c.wal_seq)  # MySQL and MariaDB


def _strict_mysql(dbapi_connection: Any, _record: object) -> None:
    # Whatever the server's sql_mode, a value the column cannot hold must be an error (refused, and so
    # dead-lettered), not a warning with the value silently cut or zeroed.
    with dbapi_connection.cursor() as cursor:
        cursor.execute(
            "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')"
        )


def _sqlite_wal(dbapi_connection: Any, _record: object) -> None:
    # In WAL mode someone reading audit.db does not block the sink's writes (nor the reverse).
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
