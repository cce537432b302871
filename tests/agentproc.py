"""A real audit-agent in a subprocess, with its own short runtime and data directories."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from auditship.agents.config import AgentConfig, load_config, parse_config
from shipper.control import Status, request_status
from tests.waiting import wait_for

# For tests that count and read events, not that test durability: no fsync, counters reported often.
QUICK_CONFIG = """
[wal]
fsync = "never"
[supervisor]
stats_interval_s = 0.2
[sinks.file]
fsync = false
"""


class AgentDirs:
    """ipc paths must stay under ~100 bytes, so these live in /tmp rather than pytest's tmp_path."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="as-", dir="/tmp"))
        self.runtime = self.root / "run"
        self.data = self.root / "data"
        self.config_file = self.root / "agent.toml"
        self.keys = self.root / "keys"
        """The agent's keys_dir: beside its config file, as an agent.toml without `keys_dir` puts it."""

    def env(self) -> dict[str, str]:
        return {"AUDITSHIP_RUNTIME_DIR": str(self.runtime), "AUDITSHIP_DATA_DIR": str(self.data)}

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class RunningAgent:
    def __init__(self, dirs: AgentDirs, config_toml: str = "", command_prefix: Sequence[str] = ()) -> None:
        """`command_prefix`: what runs the agent's command, e.g. `setpriv` with fewer capabilities."""
        self.dirs = dirs
        self.command_prefix = list(command_prefix)
        dirs.config_file.write_text(config_toml)
        self.config: AgentConfig = load_config(dirs.config_file)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = dirs.root / "agent.log"

    def _status_config(self) -> AgentConfig:
        config = parse_config(self.dirs.config_file.read_text())
        config.runtime_dir = str(self.dirs.runtime)
        return config

    def start(self, timeout: float = 30.0) -> RunningAgent:
        env = {**os.environ, **self.dirs.env()}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *self.command_prefix,
                    sys.executable,
                    "-m",
                    "auditship.agents",
                    "run",
                    "--config",
                    str(self.dirs.config_file),
                ],
                env=env,
                stdout=log,
                stderr=log,
            )
        wait_for(self._all_running, timeout, f"the agent to run its workers (log: {self.log_path})")
        return self

    def _all_running(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"agent exited with {self.process.returncode}:\n{self.log()}")
        status = self.status()
        return status is not None and all(w.state == "running" for w in status.workers)

    def status(self) -> Status | None:
        return request_status(self._status_config().runtime_path, timeout_s=1.0)

    def counters(self, worker: str) -> dict[str, int | float]:
        status = self.status()
        if status is None:
            return {}
        return next((w.counters for w in status.workers if w.name == worker), {})

    def worker_pid(self, name: str) -> int | None:
        """The worker's pid; None while it is not running (or no agent answers)."""
        status = self.status()
        return next((w.pid for w in status.workers if w.name == name), None) if status else None

    def kill_everything(self) -> None:
        """SIGKILL the supervisor and every worker at once, as a power cut to the agent would."""
        assert self.process is not None
        status = self.status()
        pids = [w.pid for w in status.workers if w.pid] if status else []
        for pid in [self.process.pid, *pids]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(10)

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.terminate(30)
            except subprocess.TimeoutExpired:
                self.kill_everything()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def file_events(data: Path) -> list[dict[str, object]]:
    """Every event the file sink wrote to its current file, in order."""
    path = data / "files" / "audit.jsonl"
    if not path.exists():
        return []
    # Split on newlines only: str.splitlines() would also break at U+2028 inside a JSON string. What
    # follows the last newline is a line the sink is still writing.
    complete = path.read_bytes().rpartition(b"\n")[0]
    return [json.loads(line) for line in complete.split(b"\n") if line.strip()]


@contextmanager
def agent_running(config_toml: str) -> Iterator[RunningAgent]:
    """An agent in directories of its own, which AUDITSHIP_RUNTIME_DIR and AUDITSHIP_DATA_DIR name (and
    no AUDITSHIP_ENDPOINT) while it runs: emitters made meanwhile find it by default."""
    dirs = AgentDirs()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in dirs.env().items():
            patch.setenv(key, value)
        patch.delenv("AUDITSHIP_ENDPOINT", raising=False)
        running = RunningAgent(dirs, config_toml).start()
        try:
            yield running
        finally:
            running.stop()
    dirs.cleanup()
