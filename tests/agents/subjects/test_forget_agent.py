"""End to end with a real agent: per-subject keys sealed by the intake, `audit-agent subject forget`
erasing one subject from the lake's point of view, and the erasure in the trail as a DATA_RETENTION
event; a new event of the forgotten subject gets a new key."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from auditship.agents.subjects.keyring import ERASURE_CHECK_INTERVAL_S
from auditship.ondisk.subject_keys import ERASED_VALUE
from auditship.query.errors import QueryError
from auditship.query.filters import EventFilter
from auditship.query.search import search
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType
from tests.agentproc import QUICK_CONFIG, RunningAgent, agent_running
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

CONFIG = f"""{QUICK_CONFIG}
[intake]
spool_scan_interval_s = 0.2
[sinks.parquet]
enabled = true
flush_interval_s = 0.5
[subjects]
per_subject_keys = true
"""


@pytest.fixture
def agent() -> Iterator[RunningAgent]:
    with agent_running(CONFIG) as running:
        yield running


def command(module: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def in_lake(agent: RunningAgent, count: int) -> bool:
    try:
        return len(search(agent.dirs.data / "lake", EventFilter(), limit=None)) >= count
    except QueryError:  # no part yet
        return False


def emit(emitter: Emitter, user: str, value: str) -> None:
    emitter.emit(AuditEvent(event_type=AuditEventType.DATA_READ, user_id=user, sensitive={"ssn": value}))


def export(agent: RunningAgent, user: str) -> list[object]:
    result = command(
        "auditship.query", "subject", "export", user, "--config", agent.dirs.config_file, "--decrypt"
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line).get("sensitive", {}).get("ssn") for line in result.stdout.splitlines()]


def test_forget_erases_the_subjects_values_records_it_and_a_new_event_gets_a_new_key(agent):
    emitter = Emitter()
    emit(emitter, "alice", "alice-1")
    emit(emitter, "bob", "bob-1")
    emitter.flush(timeout=10)
    wait_for(lambda: in_lake(agent, 2), 30, "both events in the lake")

    result = command("auditship.agents", "subject", "forget", "alice", "--config", agent.dirs.config_file)
    assert result.returncode == 0, result.stderr
    assert "destroyed subject key ds-" in result.stdout
    forgotten = time.monotonic()

    assert export(agent, "alice") == [ERASED_VALUE]
    assert export(agent, "bob") == ["bob-1"]
    retention = wait_for(
        lambda: search(
            agent.dirs.data / "lake", EventFilter(event_types=(AuditEventType.DATA_RETENTION,)), limit=None
        ),
        30,
        "the DATA_RETENTION event in the lake",
    )
    (_, event), *_ = retention
    assert (event.service_name, event.action, event.resource_type, event.resource_id) == (
        "audit-agent",
        "subject_forget",
        "data_subject",
        "alice",
    )
    assert event.details["keys_destroyed"] == 1 and event.details["key_ids"][0].startswith("ds-")

    # The intake looks for erasures at most every ERASURE_CHECK_INTERVAL_S: past that, a new key.
    wait_for(lambda: time.monotonic() > forgotten + ERASURE_CHECK_INTERVAL_S, 5, "the erasure check interval")
    emit(emitter, "alice", "alice-2")
    emitter.flush(timeout=10)
    emitter.close(timeout=5)
    wait_for(lambda: in_lake(agent, 4), 30, "the new event in the lake")
    assert export(agent, "alice") == [ERASED_VALUE, "alice-2"]
    assert agent.counters("intake").get("subject_keys") == 3  # alice, bob, alice's second


def test_forget_refuses_an_impossible_subject_in_one_line(agent):
    result = command("auditship.agents", "subject", "forget", "x" * 5000, "--config", agent.dirs.config_file)
    assert result.returncode == 2
    assert "at most 1024 characters" in result.stderr and len(result.stderr) < 300
