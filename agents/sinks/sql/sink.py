"""The SQL sink: each batch in one transaction, all of it or nothing, skipping records already stored.

open() builds the worker's one engine and reads the WAL's identity, and connects to nothing: a database
that is down when the agent starts is a batch retried later, not a worker that fails. Before the first
batch (and again after any failure, so that a table dropped under the agent comes back) the table and
its indexes are created when missing, and a table found is checked: one made before rows were keyed by
their WAL record (event_id its key, no wal_id and wal_seq) ends the worker with a SinkError that names
it and says what to do. It is not migrated in place: MariaDB and MySQL commit before and after every
ALTER TABLE, so a migration cut short there would leave a table half changed, and a table of the old
schema cannot say which WAL record its rows came from anyway.

A batch is DELIVERED once its transaction has committed. A failure is classified (classify.py):
ERRORED leaves the batch in the WAL for the runner to offer again after a backoff, and closes the
engine's connections, so that the retry connects afresh (the server may have restarted or cut them;
this costs nothing per batch, where a pre-ping would cost a round trip each time);
REJECTED means some event cannot be stored, so the batch is written again one event per transaction,
and the events that still fail go back as Refused, with the database's reason, to the dead letters
(all of them when the failure is not an event's: no privilege to create the table, say).
Either way nothing is written twice: every insert skips WAL records the table already holds (writers.py).

A skipped record must be the event the table holds under it. When a batch reaches at or below the highest
WAL seq of this WAL the table holds (read once, then kept: a batch offered again, or a seq the WAL issued
twice), the rows of those seqs are read back in the same transaction; an entry whose seq holds another
event id is refused to dead letters with both ids in the reason and logged, as the file sink does, rather
than skipped. Batches past that seq, nearly all of them, cost no read.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, func, inspect, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from auditship.agents.config import AgentConfig
from auditship.agents.errors import SinkError
from auditship.agents.sinks.base import BuiltSink, Delivery, Entry, Refused, Sink
from auditship.agents.sinks.sql.classify import BAD_VALUES, classify, describe
from auditship.agents.sinks.sql.config import SqlSinkConfig
from auditship.agents.sinks.sql.schema import events_table, json_text, outdated
from auditship.agents.sinks.sql.writers import RowWriter, writer_for
from auditship.agents.wal.identity import wal_identity
from auditship.ondisk.data_layout import DataLayout
from shipper.destinations import SQL_DIALECTS

logger = logging.getLogger("auditship.sinks.sql")

DEFAULT_DATABASE = "audit.db"
"""The SQLite file in the data directory used when `sinks.sql.url` is empty."""


class SqlSink(Sink):
    name = "sql"

    def __init__(self, config: SqlSinkConfig, data_dir: Path) -> None:
        self._default_database = None if config.url else data_dir / DEFAULT_DATABASE
        self._url = database_url(config, data_dir)
        self._table = events_table(config.table)
        self._wal = DataLayout(data_dir).wal
        self._engine: Engine | None = None
        self._writer: RowWriter | None = None
        self._failures: tuple[type[Exception], ...] = (SQLAlchemyError, *BAD_VALUES)
        self._table_ready = False
        self._where = self._table.name  # and the database, password hidden, once open: for log lines
        self._wal_id = ""
        self._stored_to: int | None = None
        """The highest seq of this WAL that the table holds, as far as this sink knows (None: to be read
        from the table, as after any failure: the table may have been dropped or restored)."""

    def open(self) -> None:
        engine = engine_for(self._url)
        self._wal_id = wal_identity(self._wal)
        writer = writer_for(engine, self._table, self._wal_id)
        if self._default_database is not None:
            # The default database is created owner-only, as every file in the data directory; SQLite
            # gives its -wal and -shm files the same mode.
            self._default_database.touch(mode=0o600, exist_ok=True)
        self._engine, self._writer = engine, writer
        self._failures = (SQLAlchemyError, engine.dialect.loaded_dbapi.Error, *BAD_VALUES)
        self._where = f"{self._table.name} at {engine.url.render_as_string(hide_password=True)}"
        logger.info("sql sink: writing to %s", self._where)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def write_batch(self, batch: list[Entry]) -> Delivery | Refused:
        if not batch:
            return Delivery.DELIVERED
        try:
            return self._write(batch)
        except self._failures as exc:
            self._table_ready = False
            self._stored_to = None
            if classify(exc) is Delivery.REJECTED:
                # Not one event's failure but the connection's: no privilege to create the table, say.
                reason = f"sql sink: {self._table.name}: {describe(exc)}"
                return Refused(list(batch), [reason] * len(batch))
            self._opened()[0].dispose()
            logger.warning(
                "sql sink: batch %d-%d not written to %s: %s",
                batch[0].lsn,
                batch[-1].lsn,
                self._where,
                describe(exc),
            )
            return Delivery.ERRORED

    def _write(self, batch: list[Entry]) -> Delivery | Refused:
        """DELIVERED, or Refused for the events the table cannot hold; raises a failure that is not one
        event's (what was committed before it stays, and the replay skips it by its WAL record)."""
        engine, writer = self._opened()
        if not self._table_ready:
            self._prepare_table(engine)
        try:
            with engine.begin() as connection:
                stored_to = self._stored_before(connection)
                writer.write(connection, batch)
                clashing = self._clashing(connection, batch, stored_to)
        except self._failures as exc:
            if classify(exc) is Delivery.ERRORED:
                raise
            logger.warning(
                "sql sink: batch %d-%d refused by %s (%s); writing its events one by one to find those "
                "it cannot hold",
                batch[0].lsn,
                batch[-1].lsn,
                self._where,
                describe(exc),
            )
            return self._write_one_by_one(engine, writer, batch)
        self._stored_to = max(stored_to, batch[-1].lsn)
        return clashing or Delivery.DELIVERED

    def _stored_before(self, connection: Connection) -> int:
        if self._stored_to is None:
            table = self._table
            highest = select(func.max(table.c.wal_seq)).where(table.c.wal_id == self._wal_id)
            self._stored_to = connection.execute(highest).scalar() or 0
        return self._stored_to

    def _clashing(self, connection: Connection, written: list[Entry], stored_to: int) -> Refused | None:
        """Of `written`, just inserted (or skipped), the entries whose seq the table held before, read back:
        those whose row is another event's are refused, since the seq was issued twice."""
        repeats = [entry for entry in written if entry.lsn <= stored_to]
        if not repeats:
            return None
        table = self._table
        rows = connection.execute(
            select(table.c.wal_seq, table.c.event_id).where(
                table.c.wal_id == self._wal_id,
                table.c.wal_seq.between(repeats[0].lsn, repeats[-1].lsn),
            )
        )
        stored = {seq: event_id for seq, event_id in rows}
        clashing = [e for e in repeats if stored.get(e.lsn, e.event.event_id) != e.event.event_id]
        if not clashing:
            return None
        reasons = [
            f"sql sink: WAL seq {entry.lsn} is stored in {table.name} for event {stored[entry.lsn]}, "
            f"this is event {entry.event.event_id}"
            for entry in clashing
        ]
        logger.error(
            "sql sink: %d entries carry seqs already stored for other events (first: %s); the WAL issued "
            "seqs twice (its seq reservation was lost with its tail?). They go to dead letters",
            len(clashing),
            reasons[0],
        )
        return Refused(clashing, reasons)

    def _opened(self) -> tuple[Engine, RowWriter]:
        if self._engine is None or self._writer is None:
            raise RuntimeError("sql sink: write_batch before open")
        return self._engine, self._writer

    def _prepare_table(self, engine: Engine) -> None:
        """Create the table when missing; SinkError when the one found is of another schema."""
        try:
            self._table.create(engine, checkfirst=True)
        except self._failures:
            # Another agent sharing the database may have created it between the check and the CREATE.
            if not inspect(engine).has_table(self._table.name):
                raise
        found = inspect(engine)
        columns = [column["name"] for column in found.get_columns(self._table.name)]
        key = found.get_pk_constraint(self._table.name)["constrained_columns"]
        if (problem := outdated(self._table, columns, key)) is not None:
            name = self._table.name
            raise SinkError(
                f"sql sink: table {self._where} is not of this agent's schema: {problem}. Rows are keyed "
                f"by their WAL record (wal_id, wal_seq) now, not by event_id, and a table made by an "
                f"older auditship is not migrated in place. Set sinks.sql.table to a new name (the sink "
                f"creates it; {name} stays as it is, to read or copy from), or rename {name} and its "
                f"indexes ix_{name}_*; docs/architecture.md, section SQL, says how to copy its rows"
            )
        self._table_ready = True

    def _write_one_by_one(self, engine: Engine, writer: RowWriter, batch: list[Entry]) -> Delivery | Refused:
        problems: dict[int, str] = {}  # by WAL seq
        with engine.connect() as connection:
            stored_to = self._stored_before(connection)
            for entry in batch:
                try:
                    with connection.begin():
                        writer.write_one(connection, entry)
                except self._failures as exc:
                    if classify(exc) is Delivery.ERRORED:
                        raise
                    problems[entry.lsn] = f"sql sink: {self._table.name}: {describe(exc)}"
            with connection.begin():
                written = [entry for entry in batch if entry.lsn not in problems]
                clashing = self._clashing(connection, written, stored_to)
        if clashing is not None:
            problems.update(zip([entry.lsn for entry in clashing.entries], clashing.reasons, strict=True))
        self._stored_to = max(stored_to, batch[-1].lsn)
        refused = [entry for entry in batch if entry.lsn in problems]
        return Refused(refused, [problems[entry.lsn] for entry in refused]) if refused else Delivery.DELIVERED


def database_url(config: SqlSinkConfig, data_dir: Path) -> str | URL:
    """`sinks.sql.url`, or the SQLite file in the data directory when it is empty."""
    # URL.create, not a string: a data directory's path may hold characters a URL gives a meaning to.
    return config.url or URL.create("sqlite", database=str(data_dir / DEFAULT_DATABASE))


def engine_for(url: str | URL) -> Engine:
    """The worker's one engine; SinkError, naming the setting, for a URL it cannot use."""
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as exc:  # its message does not repeat the URL, which may hold a password
        raise SinkError(f"sql sink: sinks.sql.url: {exc}") from exc
    if backend not in SQL_DIALECTS:
        raise SinkError(
            f"sql sink: sinks.sql.url: the sink supports {', '.join(SQL_DIALECTS)}, not {backend!r}"
        )
    try:
        return create_engine(url, json_serializer=json_text)
    except ImportError as exc:
        raise SinkError(f"sql sink: sinks.sql.url: its driver is not installed: {exc}") from exc


def build(config: AgentConfig) -> BuiltSink:
    settings = config.sinks.sql
    return BuiltSink(SqlSink(settings, config.data_path), settings.batch_size, settings.flush_interval_s)
