"""The supervisor in a real agent: its workers die with it, and a new agent on the same directories starts
cleanly beside nothing the old one left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditship.agents.supervisor import orphans
from shipper.emitter import Emitter
from tests.agentproc import QUICK_CONFIG, AgentDirs, RunningAgent, file_events
from tests.producers import numbered_event
from tests.siem_server import TOKEN, FakeSiem, ServedSiem
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def served() -> Iterator[ServedSiem]:
    served = ServedSiem(FakeSiem()).start()
    yield served
    served.stop()


def with_siem(url: str) -> str:
    return (
        QUICK_CONFIG
        + f"""
[sinks.siem]
enabled = true
format = "splunk_hec"
endpoint = "{url}"
api_key = "{TOKEN}"
flush_interval_s = 0.05
"""
    )


def gone(pid: int) -> bool:
    """No such process, or only its zombie (its new parent may never reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_workers_die_with_a_sigkilled_supervisor_and_a_new_agent_starts_and_drains_cleanly(
    dirs: AgentDirs, served: ServedSiem
) -> None:
    """The SIEM answers 503 with Retry-After: 60, so its sink is waiting out a backoff when the supervisor
    is SIGKILLed: every worker is gone within seconds. A new agent on the same directories, started at
    once, runs all its workers, delivers the SIEM's backlog, and on SIGTERM drains and exits 0."""
    served.siem.answer_next(1, 503, retry_after="60", body={"text": "Server is busy", "code": 9})
    first = RunningAgent(dirs, with_siem(served.url)).start()
    second = RunningAgent(dirs, with_siem(served.url))
    try:
        emitter = Emitter()
        events = [numbered_event("orphans", number) for number in range(100)]
        for event in events:
            emitter.emit(event)
        assert emitter.flush(30), emitter.stats
        emitter.close()
        wait_for(lambda: first.counters("sink:siem").get("retries", 0) >= 1, 30, "the SIEM sink in backoff")
        status = first.status()
        assert status is not None
        workers = [w.pid for w in status.workers if w.pid is not None]
        assert len(workers) == len(status.workers), status

        assert first.process is not None
        first.process.kill()
        first.process.wait(10)
        wait_for(
            lambda: all(gone(pid) for pid in workers), 10, f"workers {workers} to die with the supervisor"
        )

        second.start()
        wait_for(lambda: len(served.siem.hec_events) >= 100, 30, "the backlog in the SIEM")
        assert {e["event"]["event_id"] for e in served.siem.hec_events} == {e.event_id for e in events}
        assert second.terminate(60) == 0, second.log()
        assert "did not" not in second.log()
        assert len(file_events(dirs.data)) == 100
    finally:
        second.stop()
        first.stop()


HOLD_LOCK = """
import sys, time
from pathlib import Path
from auditship.agents.supervisor import orphans
orphans.claim(Path(sys.argv[1]), "sink:file")
print("holding", flush=True)
time.sleep(120)
"""


def test_a_starting_agent_kills_a_worker_an_earlier_agent_left_running(dirs: AgentDirs) -> None:
    """A process holds the file sink's worker lock, as a worker of an earlier supervisor that had no
    parent-death signal would: the new agent kills it, says so, and runs its own file sink."""
    workers = dirs.data / "workers"
    workers.mkdir(parents=True)
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(workers)], stdout=subprocess.PIPE, text=True
    ) as left:
        assert left.stdout is not None and left.stdout.readline() == "holding\n"
        agent = RunningAgent(dirs, QUICK_CONFIG)
        try:
            agent.start()
            assert left.wait(10) == -signal.SIGKILL
            assert f"a worker of an earlier agent (pid {left.pid}) still runs; killing it" in agent.log()
            holder = (workers / orphans.lock_name("sink:file")).read_text().strip()
            assert holder == str(agent.worker_pid("sink:file")) and holder != str(os.getpid())
            assert agent.terminate(60) == 0
        finally:
            agent.stop()
            left.kill()


def test_an_agent_whose_spool_falls_in_its_data_directory_warns_at_start_and_a_named_one_does_not(
    dirs: AgentDirs,
) -> None:
    """Its runtime directory is not /run/auditship and no spool_dir is set: one WARNING at start names
    both keys and what to set. The same agent with spool_dir set starts without it."""
    agent = RunningAgent(dirs, QUICK_CONFIG).start()
    agent.stop()
    warnings = [line for line in agent.log().splitlines() if " WARNING " in line and "spool_dir" in line]
    assert len(warnings) == 1, agent.log()
    assert f"so the spool is {dirs.data / 'spool'}, inside the data directory" in warnings[0]
    named = f'spool_dir = "{dirs.root / "spool"}"\n' + QUICK_CONFIG
    agent.log_path.unlink()
    agent = RunningAgent(dirs, named).start()
    agent.stop()
    assert "spool_dir is not set" not in agent.log()
