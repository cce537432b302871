"""The databases the SQL sink is tested against: SQLite in a temporary directory, and the PostgreSQL and
MariaDB servers on loopback (a test that needs one skips on a laptop without it, and fails in CI).

Each test gets its own table (and, on MariaDB, its own user; on PostgreSQL its own application_name),
so that tests running at once never see, or cut, each other's rows and connections.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from tests.services import require, tcp_reachable

KINDS = ("sqlite", "postgresql", "mariadb")
SERVERS = ("postgresql", "mariadb")
POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/test"


class Database:
    """One test's table in one database, its sink's URL, and an admin connection to look at the table
    and to cut the sink's connections."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.name = f"as_{uuid.uuid4().hex[:12]}"
        self.table = self.name
        self._users: list[str] = []
        if kind == "sqlite":
            self.url = f"sqlite:///{directory / 'audit.db'}"
            self.admin: Engine = create_engine(self.url)
        elif kind == "postgresql":
            require(tcp_reachable("127.0.0.1", 5432), "PostgreSQL is not listening on 127.0.0.1:5432")
            self.url = f"{POSTGRES_ADMIN}?application_name={self.name}"
            self.admin = create_engine(POSTGRES_ADMIN)
        else:
            require(tcp_reachable("127.0.0.1", 3306), "MariaDB is not listening on 127.0.0.1:3306")
            self.admin = create_engine(MARIADB_ADMIN)
            self.url = self._login(self.name, "ALL PRIVILEGES ON test.*")

    def count(self) -> int:
        with self.admin.connect() as connection:
            return int(connection.execute(text(f"SELECT count(*) FROM {self.table}")).scalar_one())

    def event_ids(self) -> list[str]:
        with self.admin.connect() as connection:
            return list(connection.execute(text(f"SELECT event_id FROM {self.table}")).scalars())

    def keys(self) -> list[tuple[str, int]]:
        """Every row's WAL record, (wal_id, wal_seq), in order."""
        with self.admin.connect() as connection:
            found = connection.execute(text(f"SELECT wal_id, wal_seq FROM {self.table} ORDER BY 1, 2"))
            return [(str(wal_id), int(seq)) for wal_id, seq in found]

    def row(self, event_id: str) -> dict[str, object]:
        with self.admin.connect() as connection:
            found = connection.execute(
                text(f"SELECT * FROM {self.table} WHERE event_id = :id"), {"id": event_id}
            )
            return dict(found.mappings().one())

    def execute(self, sql: str) -> None:
        with self.admin.begin() as connection:
            connection.execute(text(sql))

    def login(self, suffix: str, grant: str) -> str:
        """The URL of another login, `<name>_<suffix>`, with only `grant`; dropped with the database."""
        return self._login(f"{self.name}_{suffix}", grant)

    def _login(self, user: str, grant: str) -> str:
        if self.kind == "postgresql":
            self.execute(f"CREATE ROLE {user} LOGIN")
            self._users.append(user)
            self.execute(f"GRANT {grant} TO {user}")
            return f"postgresql+psycopg://{user}@127.0.0.1:5432/test"
        self.execute(f"CREATE USER '{user}'@'%'")
        self._users.append(user)
        self.execute(f"GRANT {grant} TO '{user}'@'%'")
        return f"mysql+pymysql://{user}@127.0.0.1:3306/test"

    def cut_sink_connections(self, *, busy_only: bool = False) -> tuple[int, int]:
        """Kill the sink's connections (with `busy_only`, those in a statement or a transaction: a kill
        that lands mid-batch); how many were killed, and how many of them were busy."""
        if self.kind == "postgresql":
            sql = (
                "SELECT count(*), count(*) FILTER (WHERE state <> 'idle') FROM ("
                "SELECT state, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name AND (NOT :busy_only OR state <> 'idle')) AS cut"
            )
            with self.admin.begin() as connection:
                found = connection.execute(text(sql), {"name": self.name, "busy_only": busy_only})
                killed, busy = found.one()
            return int(killed), int(busy)
        with self.admin.begin() as connection:
            seen = connection.execute(
                text(
                    "SELECT id, command <> 'Sleep' OR id IN "
                    "(SELECT trx_mysql_thread_id FROM information_schema.innodb_trx) "
                    "FROM information_schema.processlist WHERE user = :user"
                ),
                {"user": self.name},
            ).all()
            cut = [int(connection_id) for connection_id, busy in seen if busy or not busy_only]
            for connection_id in cut:
                # It may have ended between the look and the kill: 1094 "unknown thread id".
                try:
                    connection.execute(text(f"KILL CONNECTION {connection_id}"))
                except Exception as exc:
                    if "1094" not in str(exc):
                        raise
        return len(cut), sum(1 for _, busy in seen if busy)

    def close(self) -> None:
        self.execute(f"DROP TABLE IF EXISTS {self.table}")
        for user in self._users:
            if self.kind == "postgresql":
                self.execute(f"DROP OWNED BY {user}")
                self.execute(f"DROP ROLE {user}")
            else:
                self.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        self.admin.dispose()


@contextmanager
def database(kind: str, directory: Path) -> Iterator[Database]:
    made = Database(kind, directory)
    try:
        yield made
    finally:
        made.close()
