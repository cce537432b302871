"""The SQL sink (the seed's database destination), split by role:

    sink.py      the sink: one transaction per batch, the table created when missing, a refused batch
                 narrowed down to the events the table cannot hold
    writers.py   each dialect's idempotent INSERT (event id conflicts skipped), COPY on PostgreSQL
    schema.py    the events table and an event as its row
    classify.py  what a failure means: ERRORED (retried) or REJECTED (dead letters)

SQLAlchemy 2 Core, one engine per worker; PostgreSQL (psycopg), MySQL/MariaDB (pymysql) and SQLite,
the default (`audit.db` in the data directory). Only the SQL sink's worker imports this package.
"""

from __future__ import annotations

from auditship.agents.config import AgentConfig
from auditship.agents.sinks.sql.sink import SqlSink


def build(config: AgentConfig) -> tuple[SqlSink, int, float]:
    settings = config.sinks.sql
    return SqlSink(settings, config.data_path), settings.batch_size, settings.flush_interval_s
