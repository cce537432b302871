"""audit-agent's commands as a user runs them: subprocesses against a real agent, real pipes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditship.agents.config import parse_config
from shipper.emitter import Emitter
from tests.agentproc import QUICK_CONFIG, RunningAgent, agent_running
from tests.pipes import into_closed_pipe
from tests.producers import numbered_event
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def agent() -> Iterator[RunningAgent]:
    with agent_running(QUICK_CONFIG) as running:
        yield running


def audit_agent(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `audit-agent ARGS` to completion, in the environment that points it at the module's agent."""
    return subprocess.run(
        [sys.executable, "-m", "auditship.agents", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_status_json_is_an_object_with_every_figure_of_the_table(agent: RunningAgent) -> None:
    """--json prints one object: the agent's pid and, per worker, its name, state, pid, restarts and
    counters, and for a sink (and the detector) how far it lags behind the WAL, the figure the table
    shows as lag_events."""
    emitter = Emitter(agent.config.intake_endpoint)
    try:
        for number in range(10):
            emitter.emit(numbered_event("status", number))
        assert emitter.flush(30), emitter.stats
    finally:
        emitter.close()
    wait_for(lambda: agent.counters("sink:file").get("committed") == 10, 30, "the file sink to commit 10")

    result = audit_agent("status", "--json")
    assert (result.returncode, result.stderr) == (0, "")
    report = json.loads(result.stdout)
    assert report["pid"] == agent.process.pid  # type: ignore[union-attr]
    workers = {worker["name"]: worker for worker in report["workers"]}
    assert list(workers) == ["intake", "sink:file", "sink:parquet", "detect"]
    for worker in workers.values():
        assert worker["state"] == "running" and worker["restarts"] == 0
        assert worker["pid"] == agent.worker_pid(worker["name"])
    assert workers["intake"]["counters"]["last_seq"] == 10
    assert "lag_events" not in workers["intake"]
    assert workers["sink:file"]["lag_events"] == 0
    parquet = workers["sink:parquet"]
    assert parquet["lag_events"] == 10 - parquet["counters"]["committed"]
    assert workers["detect"]["lag_events"] == 10 - workers["detect"]["counters"]["committed"]

    table = audit_agent("status").stdout.splitlines()
    assert table[0] == f"audit-agent pid {report['pid']}"
    file_line = next(line for line in table if line.split()[0] == "sink:file")
    assert "lag_events=0" in file_line.split()


def test_check_config_prints_no_secret(tmp_path: Path) -> None:
    """The password of the SQL URL (and of a URL's query), the SIEM's API key and a password in its
    endpoint are printed as ***; the rest of the effective config is printed as it is, and reads back."""
    path = tmp_path / "agent.toml"
    path.write_text(
        "[sinks.sql]\n"
        'url = "postgresql+psycopg://auditor:pw-in-url@db.internal:5432/audit?sslpassword=pw-in-query"\n'
        "[sinks.siem]\n"
        "enabled = true\n"
        'endpoint = "https://collector:pw-in-endpoint@siem.internal/api/events"\n'
        'api_key = "the-api-key"\n'
    )
    result = audit_agent("check-config", str(path))
    assert (result.returncode, result.stderr) == (0, "")
    for secret in ("pw-in-url", "pw-in-query", "pw-in-endpoint", "the-api-key"):
        assert secret not in result.stdout
    printed = parse_config(result.stdout)
    assert printed.sinks.sql.url == "postgresql+psycopg://auditor:***@db.internal:5432/audit?sslpassword=***"
    assert printed.sinks.siem.endpoint == "https://collector:***@siem.internal/api/events"
    assert printed.sinks.siem.api_key == "***"
    assert printed.sinks.siem.api_key_header == "X-API-Key"
    assert printed.enabled_sinks() == ["file", "parquet", "siem"]


@pytest.mark.slow
def test_ps_shows_each_agent_process_by_its_role(agent: RunningAgent) -> None:
    """The supervisor and each worker carry their role in their command line, where ps reads it, not
    multiprocessing's `python3 -B -c from multiprocessing.spawn import ...`."""
    status = agent.status()
    assert status is not None
    pids = {"supervisor": status.pid} | {worker.name: worker.pid for worker in status.workers}
    titles = {
        name: Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode() for name, pid in pids.items()
    }
    assert titles == {
        "supervisor": "audit-agent: supervisor",
        "intake": "audit-agent: intake",
        "sink:file": "audit-agent: sink file",
        "sink:parquet": "audit-agent: sink parquet",
        "detect": "audit-agent: detect",
    }


@pytest.mark.slow
@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("command", ["status", "status --json", "check-config"])
def test_output_into_a_closed_pipe_ends_quietly(agent: RunningAgent, command: str, buffered: bool) -> None:
    """`audit-agent status | head -1`: the reader is gone before the output is written; the command exits
    0 with nothing on stderr, not a BrokenPipeError traceback."""
    args = command.split() + ([str(agent.dirs.config_file)] if command == "check-config" else [])
    result = into_closed_pipe("auditship.agents", *args, buffered=buffered)
    assert (result.returncode, result.stderr) == (0, "")
