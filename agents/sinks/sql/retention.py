"""Retention in the SQL sink's table: delete the rows older than a horizon, except those a legal hold
matches, in batches, each its own transaction.

A batch is the keys (wal_id, wal_seq) of up to BATCH_ROWS old rows, found through the index on
`timestamp`, then deleted by key with the condition repeated: a long deletion never holds one big
transaction (locks, undo, replication lag), and one cut short leaves only whole batches done, the rest
for the next run. Keys rather than `DELETE ... LIMIT`, which neither PostgreSQL nor (without an option
at build time) SQLite has, and rather than `IN (SELECT ... LIMIT)`, which MySQL and MariaDB refuse.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from sqlalchemy import ColumnElement, Table, and_, delete, false, func, inspect, not_, or_, select

from auditship.agents.holds import Hold
from auditship.agents.sinks.sql.config import SqlSinkConfig
from auditship.agents.sinks.sql.schema import events_table
from auditship.agents.sinks.sql.sink import database_url, engine_for

BATCH_ROWS = 5000
"""Rows per delete: under every database's limit of bound parameters (SQLite's 32,766)."""


class SqlRetention(msgspec.Struct, frozen=True):
    where: str
    """The table and the database, password hidden."""
    removed: int
    """Rows deleted (or, in a dry run, that would be)."""
    held: int = 0
    """Old rows kept because a legal hold matches them."""
    holds: tuple[str, ...] = ()
    """The names of the holds that matched."""


def remove_old_rows(
    config: SqlSinkConfig,
    data_dir: Path,
    horizon: datetime,
    holds: Sequence[Hold] = (),
    *,
    dry_run: bool = False,
    batch_rows: int = BATCH_ROWS,
) -> SqlRetention:
    """Delete (or with `dry_run` count) the rows of the sink's table whose timestamp is before
    `horizon` and that no hold in `holds` matches. Raises SQLAlchemy's errors (the caller reports them)."""
    engine = engine_for(database_url(config, data_dir))
    table = events_table(config.table)
    where = f"{table.name} at {engine.url.render_as_string(hide_password=True)}"
    try:
        if not inspect(engine).has_table(table.name):
            return SqlRetention(where, 0)
        naive = engine.dialect.name != "postgresql"  # DATETIME holding UTC elsewhere (schema.py)
        cut = horizon.astimezone(UTC)
        old = table.c.timestamp < (cut.replace(tzinfo=None) if naive else cut)
        conditions = {hold.name: _held(table, hold, naive=naive) for hold in holds}
        held_rows = or_(false(), *conditions.values())
        removable = and_(old, not_(held_rows))
        with engine.connect() as connection:
            matched = tuple(
                name
                for name, condition in conditions.items()
                if connection.execute(select(1).where(old, condition).limit(1)).first() is not None
            )
            held = connection.execute(select(func.count()).where(old, held_rows)).scalar() if matched else 0
            if dry_run:
                count = connection.execute(select(func.count()).where(removable)).scalar() or 0
                return SqlRetention(where, count, held or 0, matched)
        removed = 0
        while True:  # ends when a batch comes back short: nothing old and unheld is left
            with engine.begin() as connection:
                keys = connection.execute(
                    select(table.c.wal_id, table.c.wal_seq).where(removable).limit(batch_rows)
                ).all()
                by_wal: dict[str, list[int]] = defaultdict(list)
                for wal_id, seq in keys:
                    by_wal[wal_id].append(seq)
                for wal_id, seqs in by_wal.items():
                    removed += connection.execute(
                        delete(table).where(table.c.wal_id == wal_id, table.c.wal_seq.in_(seqs), removable)
                    ).rowcount
            if len(keys) < batch_rows:
                return SqlRetention(where, removed, held or 0, matched)
    finally:
        engine.dispose()


def _held(table: Table, hold: Hold, *, naive: bool) -> ColumnElement[bool]:
    """The hold's condition, never NULL (a NULL user_id is no match, not an unknown), so that NOT of it
    is true for every row it does not match."""
    terms: list[ColumnElement[bool]] = []
    for field in ("user_id", "resource_type", "resource_id"):
        if (value := getattr(hold, field)) is not None:
            column = table.c[field]
            terms.append(and_(column.is_not(None), column == value))
    for moment, before in ((hold.since, False), (hold.until, True)):
        if moment is not None:
            bound = moment.astimezone(UTC).replace(tzinfo=None) if naive else moment
            terms.append(table.c.timestamp < bound if before else table.c.timestamp >= bound)
    return and_(*terms)
