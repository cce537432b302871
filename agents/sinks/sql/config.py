"""The SQL sink's section, `[sinks.sql]`: its checks, and what the seed's settings make of it."""

from __future__ import annotations

import re
from typing import Self

from auditship.agents.section import Positive
from auditship.agents.sinks.base import SinkConfig
from shipper.destinations import SQL_DIALECTS
from shipper.seed import SeedSettings

# Letters, digits and _: the name is also part of the index names (`ix_<table>_event_type`), which
# must fit PostgreSQL's 63-character identifiers.
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")


class SqlSinkConfig(SinkConfig):
    enabled: bool = False
    url: str = ""
    """A SQLAlchemy URL; empty means SQLite at data_dir/audit.db."""
    table: str = "audit_events"
    """Created with its indexes when missing."""
    batch_size: Positive = 1000
    """Events per transaction. Each costs a few round trips, so small batches cap the rate (about 45,000
    rows/s into PostgreSQL at 100, 75,000 at 1,000: `python -m bench sinks --only sql`)."""
    flush_interval_s: float = 1.0
    """How long a partial batch waits for more events."""

    def check(self, key: str) -> None:
        if not _TABLE.fullmatch(self.table):
            raise ValueError(
                f"{key}.table: expected 1 to 48 letters, digits or _, not starting with a digit, got "
                f"{self.table!r}"
            )
        if not self.url:
            return
        # Only the agent has SQLAlchemy, and only a SQL sink with a URL needs it here.
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            dialect = make_url(self.url).get_dialect()
        except ArgumentError as exc:  # its message does not repeat the URL, which may hold a password
            raise ValueError(f"{key}.url: {exc}") from exc
        if dialect.name not in SQL_DIALECTS:
            raise ValueError(
                f"{key}.url: the SQL sink supports {', '.join(SQL_DIALECTS)}, not {dialect.name!r}"
            )
        try:
            dialect.import_dbapi()
        except ImportError as exc:
            raise ValueError(
                f"{key}.url: its driver {dialect.driver!r} is not installed ({exc}); install it or name "
                "one that is, as in postgresql+psycopg:// or mysql+pymysql://"
            ) from exc

    @classmethod
    def from_seed(cls, seed: SeedSettings) -> Self:
        """On with `enable_database_logging` (SQLite in the data directory, `batch_size` events a
        transaction), or with a DatabaseAuditDestination, whose URL and batch size win."""
        sql = cls(enabled=seed.enable_database_logging, batch_size=seed.batch_size)
        if (destination := seed.database_destination) is not None:
            sql.enabled = True
            sql.url = destination.url
            sql.batch_size = destination.batch_size
        return sql
