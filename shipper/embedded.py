"""An agent started by the service itself, for `audit_context` on a machine with no agent of its own.

It is the same `audit-agent` code in child processes (`python -m auditship.agents run`), configured from the
service's AuditConfig: its settings go as the seed's own (shipper.seed) in `embedded-agent.toml` (0600)
in its data directory, and the agent maps them onto its config. So the seed's Quick Start works on a
laptop with nothing else installed. It runs in this user's own runtime directory, never the host
agent's, and is up once every worker says it serves (shipper.control). Its log goes to `agent.log` in
its data directory; its warnings and errors also reach this process's `auditship.embedded` logger, so a
service's own log shows what went wrong and its stderr is not filled with the agent's INFO lines.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, NamedTuple

import msgspec

from auditship.ondisk import data_layout
from shipper import endpoint
from shipper.config import AuditConfig
from shipper.control import request_status
from shipper.seed import seed_settings

log = logging.getLogger("auditship.embedded")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0
LOG_NAME = "agent.log"
SETTINGS_NAME = "embedded-agent.toml"
_RELAYED_LEVELS = {"WARNING": logging.WARNING, "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}


class AgentPlaces(NamedTuple):
    """Where an agent keeps its data and listens, resolved from what its settings name as the agent
    resolves them (shipper.endpoint)."""

    data: Path
    runtime: Path
    intake_endpoint: str

    @classmethod
    def named(cls, data_dir: str, runtime_dir: str, intake_endpoint: str) -> AgentPlaces:
        runtime = endpoint.agent_runtime_dir(runtime_dir)
        return cls(
            data_layout.data_dir(data_dir), runtime, endpoint.agent_intake_endpoint(intake_endpoint, runtime)
        )


def agent_answers(timeout_s: float = 0.5) -> bool:
    """True when an agent answers on this host's default control socket."""
    return request_status(endpoint.agent_runtime_dir(""), timeout_s) is not None


def agent_serving(runtime: Path, timeout_s: float = 0.5) -> bool:
    """True when the agent of `runtime` answers and every worker is serving (the intake's socket is bound)."""
    status = request_status(runtime, timeout_s)
    return status is not None and all(worker.state == "running" for worker in status.workers)


class EmbeddedAgent:
    def __init__(self, places: AgentPlaces, settings_option: str, settings: msgspec.Struct) -> None:
        """An agent at `places`, started with `python -m auditship.agents run <settings_option> FILE`,
        FILE holding `settings` as TOML: `--seed` and a service's SeedSettings (`for_service`), or
        `--config` and an AgentConfig."""
        self.places = places
        self.settings_option = settings_option
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = places.data / LOG_NAME

    @classmethod
    def for_service(cls, config: AuditConfig, compliance: Sequence[str] = ()) -> EmbeddedAgent:
        """The embedded agent of an AuditConfig, under the presets `compliance` names (a context's
        requirements); ValueError for a setting no agent could run with."""
        seed = seed_settings(config, compliance)
        places = AgentPlaces.named(seed.data_dir, seed.runtime_dir, seed.endpoint)
        return cls(places, "--seed", seed)

    def start(self) -> None:
        """Start the agent and wait until every worker serves; RuntimeError, naming its log, if not."""
        missing = _missing_agent_requirements()
        if missing:
            raise RuntimeError(
                "the embedded audit-agent needs the agent extra: pip install 'auditship[agent]' "
                f"(not installed: {', '.join(missing)})"
            )
        data_dir = self.places.data
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings_path = data_dir / SETTINGS_NAME
        # 0600: it may hold a database password or a SIEM token.
        fd = os.open(
            settings_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        with os.fdopen(fd, "wb") as file:
            os.fchmod(fd, 0o600)
            file.write(msgspec.toml.encode(self.settings))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "auditship.agents", "run", self.settings_option, str(settings_path)],
            env=os.environ.copy(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        threading.Thread(
            target=_relay, args=(self.process.stdout, self.log_path), name="auditship-agent-log", daemon=True
        ).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not agent_serving(self.places.runtime, 0.2):
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the embedded audit-agent exited with code {self.process.returncode} (its log: "
                    f"{self.log_path})"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the embedded audit-agent did not answer within {START_TIMEOUT_S:.0f}s (its log: "
                    f"{self.log_path})"
                )
        log.debug("embedded audit-agent started (pid %d, data in %s)", self.process.pid, data_dir)

    def stop(self) -> int | None:
        """Drain and stop the agent; its exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.error("the embedded audit-agent did not stop within %.0fs; killing it", STOP_TIMEOUT_S)
            self.process.kill()
            return self.process.wait()


def _missing_agent_requirements() -> list[str]:
    """The agent extra's distributions that are not installed, read from auditship's metadata, so that
    a plain install is told what to install rather than shown an agent's ImportError. Nothing when
    auditship is not installed as a distribution (run from a source tree)."""
    try:
        requirements = importlib.metadata.requires("auditship") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    missing = []
    for requirement in requirements:
        name, _, marker = requirement.partition(";")
        if marker.replace("'", '"').split() != ["extra", "==", '"agent"']:
            continue
        project = re.split(r"[\s\[<>=!~;]", name.strip(), maxsplit=1)[0]
        try:
            importlib.metadata.distribution(project)
        except importlib.metadata.PackageNotFoundError:
            missing.append(project)
    return missing


def _relay(stream: IO[bytes], path: Path) -> None:
    """Copy the agent's output to its log file, and its warnings and errors to our logger.

    A line reads `<date> <time> <LEVEL> <process>[<pid>] <logger>: <message>` (agents.logs)."""
    with stream, path.open("ab") as file:
        for raw in stream:
            file.write(raw)
            file.flush()
            parts = raw.decode(errors="replace").rstrip().split(" ", 3)
            level = _RELAYED_LEVELS.get(parts[2]) if len(parts) == 4 else None
            if level is not None:
                log.log(level, "embedded audit-agent: %s", parts[3])
