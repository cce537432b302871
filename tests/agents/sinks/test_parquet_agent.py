"""The Parquet sink end to end: real emitters, a real agent with its parquet worker, real parts read back
with DuckDB. One agent serves the module; small batches keep the worker writing parts all the time."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import Counter
from collections.abc import Iterator
from typing import Any

import duckdb
import msgspec
import pytest

from auditship.agents.crypto import Keyring, decrypt_sensitive
from auditship.ondisk.envelope import is_envelope
from auditship.ondisk.lake_layout import live_parts
from auditship.query.filters import EventFilter
from auditship.query.search import search
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType
from tests.agentproc import AgentDirs, RunningAgent, file_events
from tests.producers import produce
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

CONFIG = """
[wal]
fsync = "never"
[supervisor]
stats_interval_s = 0.2
[supervisor.restart]
backoff_initial_s = 0.1
[sinks.file]
fsync = false
[sinks.parquet]
flush_interval_s = 0.05
max_rows = 500
"""


@pytest.fixture(scope="module")
def dirs() -> Iterator[AgentDirs]:
    dirs = AgentDirs()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in dirs.env().items():
            patch.setenv(key, value)
        patch.delenv("AUDITSHIP_ENDPOINT", raising=False)
        yield dirs
    dirs.cleanup()


@pytest.fixture(scope="module")
def agent(dirs: AgentDirs) -> Iterator[RunningAgent]:
    running = RunningAgent(dirs, CONFIG).start()
    yield running
    running.stop()


def lake(dirs: AgentDirs, columns: str = "event_id") -> list[tuple[Any, ...]]:
    """`columns` of every row a reader of the lake sees, with the partition columns date and service."""
    paths = [str(path) for path in live_parts(dirs.data / "lake")]
    if not paths:
        return []
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT {columns} FROM read_parquet(?, hive_partitioning = true)", [paths]
        ).fetchall()


def kill_the_parquet_worker_as_it_writes(agent: RunningAgent, dirs: AgentDirs) -> None:
    """SIGKILL the parquet worker once it has added 200 rows to the lake; return when it runs again."""
    pid = wait_for(lambda: agent.worker_pid("sink:parquet"), 30, "a running parquet worker")
    assert pid is not None
    floor = len(lake(dirs)) + 200
    wait_for(lambda: len(lake(dirs)) >= floor, 60, "the parquet worker writing parts")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: agent.worker_pid("sink:parquet") not in (None, pid), 30, "a restarted worker")


def test_emitted_events_land_in_their_service_partition_with_sensitive_values_encrypted(
    dirs: AgentDirs, agent: RunningAgent
) -> None:
    """Events of three services arrive once each, each in its service's partition; a sensitive value is
    an envelope in the lake that the agent's keyring opens."""
    secret = "4111-1111-1111-1111"
    emitter = Emitter()
    events = [
        AuditEvent(
            event_type=AuditEventType.DATA_READ,
            service_name=f"svc-{n % 3}",
            user_id=f"user-{n}",
            sensitive={"card": secret} if n == 7 else {},
        )
        for n in range(300)
    ]
    for event in events:
        emitter.emit(event)
    assert emitter.flush(30), emitter.stats
    emitter.close()
    ids = {event.event_id for event in events}

    def arrived() -> list[tuple[Any, ...]]:
        return [row for row in lake(dirs, "event_id, service, service_name, sensitive") if row[0] in ids]

    wait_for(lambda: len(arrived()) >= 300, 30, "the 300 events in the lake")
    mine = arrived()
    assert len(mine) == 300
    assert all(service == name for _, service, name, _ in mine)
    assert Counter(service for _, service, _, _ in mine) == {"svc-0": 100, "svc-1": 100, "svc-2": 100}
    (sealed,) = [msgspec.json.decode(sensitive) for _, _, _, sensitive in mine if sensitive != "{}"]
    assert is_envelope(sealed["card"])
    # Read back whole: the envelope binds the event's hash.
    found = search(dirs.data / "lake", EventFilter(user_id="user-7"), limit=None)
    (stored,) = [event for _, event in found if event.event_id == events[7].event_id]
    assert stored.sensitive == sealed
    assert decrypt_sensitive(stored, Keyring.load_or_create(dirs.keys)).sensitive == {"card": secret}


def test_the_parquet_worker_killed_mid_stream_is_restarted_and_the_lake_holds_every_event_once(
    dirs: AgentDirs, agent: RunningAgent
) -> None:
    """While two producers emit 15,000 events each, the parquet worker is SIGKILLed three times as it
    writes parts; the supervisor restarts it, and in the end the lake holds every event exactly once: the
    same event ids as the file sink."""
    names = ["kill-a", "kill-b"]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    producers = [
        context.Process(
            target=produce,
            args=(dirs.env(), name, 15_000, results),
            kwargs={"pace_every": 100, "pace_s": 0.02},
        )
        for name in names
    ]
    for process in producers:
        process.start()
    try:
        for _ in range(3):
            kill_the_parquet_worker_as_it_writes(agent, dirs)
        stats = dict(results.get(timeout=120) for _ in producers)
    finally:
        for process in producers:
            process.join(30)
            if process.is_alive():
                process.kill()

    def produced(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [row for row in rows if row[1] in names]

    def in_file() -> list[tuple[Any, ...]]:
        return produced([(e["event_id"], e["user_id"]) for e in file_events(dirs.data)])

    wait_for(lambda: len(in_file()) >= 30_000, 60, "every event in the file sink")
    wait_for(lambda: len(produced(lake(dirs, "event_id, user_id"))) >= 30_000, 60, "every event in the lake")
    rows = produced(lake(dirs, "event_id, user_id, resource_id"))
    assert len(rows) == 30_000, stats
    assert Counter((user, int(number)) for _, user, number in rows) == {
        (name, number): 1 for name in names for number in range(15_000)
    }
    assert {event_id for event_id, *_ in rows} == {event_id for event_id, _ in in_file()}
    status = agent.status()
    assert status is not None
    assert next(w.restarts for w in status.workers if w.name == "sink:parquet") == 3
