"""The SQL sink inside a real agent: emitted events land in the table once each, also while the database
cuts the sink's connections in the middle of its batches; what it refuses waits in dead letters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from auditship.agents.cli import main
from auditship.agents.sinks.base import Delivery
from auditship.agents.sinks.sql.config import SqlSinkConfig
from auditship.agents.sinks.sql.sink import SqlSink
from shipper.emitter import Emitter
from tests.agentproc import AgentDirs, RunningAgent
from tests.agents.sinks.entries import entries
from tests.databases import SERVERS, Database, database
from tests.producers import numbered_event
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


def agent_toml(url: str, table: str) -> str:
    # Only the SQL sink, with small batches flushed at once: many transactions to cut into.
    return f"""
[wal]
fsync = "never"
[supervisor]
stats_interval_s = 0.2
[sinks.file]
enabled = false
[sinks.sql]
enabled = true
url = "{url}"
table = "{table}"
flush_interval_s = 0.0
"""


def emit_paced(emitter: Emitter, producer: str, count: int) -> list[str]:
    """Emit `count` numbered events, about 2,500 a second; their ids."""
    ids = []
    for number in range(count):
        event = numbered_event(producer, number)
        ids.append(event.event_id)
        emitter.emit(event)
        if number % 50 == 49:
            time.sleep(0.02)
    return ids


def test_events_land_once_in_the_default_sqlite_database(dirs: AgentDirs) -> None:
    """No URL: data_dir/audit.db, created with its table by the sink."""
    with database("sqlite", dirs.data) as db:  # the same file as the sink's default
        agent = RunningAgent(dirs, agent_toml("", db.table)).start()
        emitter = Emitter()
        try:
            ids = emit_paced(emitter, "lite", 2_000)
            assert emitter.flush(30), emitter.stats
            wait_for(lambda: agent.counters("sink:sql").get("delivered", 0) >= 2_000, 60, "2,000 delivered")
            assert sorted(db.event_ids()) == sorted(ids)
        finally:
            emitter.close()
            agent.stop()


@pytest.mark.parametrize("kind", SERVERS)
def test_connections_cut_mid_batch_lose_nothing_and_duplicate_nothing(
    kind: str, dirs: AgentDirs, tmp_path: Path
) -> None:
    """pg_terminate_backend / KILL CONNECTION on the sink's busy connections, again and again while
    events stream in: afterwards the table holds every event once, and the sink did retry."""
    with database(kind, tmp_path) as db:
        agent = RunningAgent(dirs, agent_toml(db.url, db.table)).start()
        emitter = Emitter()
        emitted: list[str] = []
        producer = threading.Thread(target=lambda: emitted.extend(emit_paced(emitter, kind, 6_000)))
        try:
            producer.start()
            busy_cuts = cut_while(db, producer)
            producer.join(60)
            assert emitter.flush(30), emitter.stats
            wait_for(lambda: agent.counters("sink:sql").get("delivered", 0) >= 6_000, 90, "6,000 delivered")
            ids = db.event_ids()
            assert not [i for i, n in Counter(ids).items() if n > 1]
            assert sorted(ids) == sorted(emitted)
            assert busy_cuts >= 1, "no connection was cut mid-batch: the test proved nothing"
            wait_for(lambda: agent.counters("sink:sql").get("retries", 0) >= 1, 10, "the sink's retries")
            assert agent.counters("sink:sql").get("dead_lettered", 0) == 0
        finally:
            producer.join(60)
            emitter.close()
            agent.stop()


def cut_while(db: Database, producer: threading.Thread, limit_s: float = 30.0) -> int:
    """Cut the sink's connections while `producer` runs, as soon as one is busy (at most once every
    50 ms, so that batches also get through); how many cuts landed mid-batch."""
    busy_cuts = 0
    deadline = time.monotonic() + limit_s
    while producer.is_alive() and time.monotonic() < deadline:
        _, busy = db.cut_sink_connections(busy_only=True)
        busy_cuts += busy
        time.sleep(0.05 if busy else 0.005)
    return busy_cuts


def test_events_refused_for_a_missing_grant_land_once_redelivered_after_the_grant(
    dirs: AgentDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A login that may not INSERT: the runner dead-letters every event with the reason, and goes on.
    After GRANT INSERT, `audit-agent redeliver sql` puts each of them in the table, once."""
    with database("postgresql", tmp_path) as db:
        made_by_admin = SqlSink(SqlSinkConfig(enabled=True, url=db.url, table=db.table), tmp_path)
        made_by_admin.open()
        assert made_by_admin.write_batch(entries(range(1, 2))) is Delivery.DELIVERED
        made_by_admin.close()
        agent = RunningAgent(dirs, agent_toml(db.login("ro", f"SELECT ON {db.table}"), db.table)).start()
        emitter = Emitter()
        try:
            ids = emit_paced(emitter, "refused", 300)
            assert emitter.flush(30), emitter.stats
            wait_for(
                lambda: agent.counters("sink:sql").get("dead_lettered", 0) >= 300, 30, "300 dead letters"
            )
        finally:
            emitter.close()
            agent.stop()
        letters = (dirs.data / "deadletters" / "sql.jsonl").read_bytes().splitlines()
        assert len(letters) == 300
        assert b"permission denied for table" in letters[0]
        db.execute(f"GRANT INSERT ON {db.table} TO {db.name}_ro")
        # The command configures logging for its process, here pytest's.
        monkeypatch.setattr("auditship.agents.redeliver.configure_logging", lambda level, process: None)
        assert main(["redeliver", "sql", "--config", str(dirs.config_file)]) == 0
        assert db.count() == 301
        assert set(ids) <= set(db.event_ids())
