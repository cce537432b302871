"""The SQL sink (the seed's database destination), split by role:

    config.py    `[sinks.sql]`: its keys, its checks, what the seed's settings make of it
    sink.py      the sink: one transaction per batch, the table created when missing, a refused batch
                 narrowed down to the events the table cannot hold; build()
    writers.py   each dialect's idempotent INSERT (event id conflicts skipped), COPY on PostgreSQL
    schema.py    the events table and an event as its row
    classify.py  what a failure means: ERRORED (retried) or REJECTED (dead letters)

SQLAlchemy 2 Core, one engine per worker; PostgreSQL (psycopg), MySQL/MariaDB (pymysql) and SQLite,
the default (`audit.db` in the data directory). Only the SQL sink's worker imports sink.py (and so
SQLAlchemy).
"""
