"""An agent started by the service itself, for `audit_context` on a machine with no agent of its own.

It is the same `audit-agent` code in child processes (`python -m auditship.agents run`), configured from the
service's AuditConfig, so the seed's Quick Start works on a laptop with nothing else installed. It
runs in this user's own runtime directory, never the host agent's. Its log goes to `agent.log` in its
data directory; its warnings and errors also reach this process's `auditship.embedded` logger, so a
service's own log shows what went wrong and its stderr is not filled with the agent's INFO lines.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from shipper import endpoint
from shipper.config import AuditConfig

if TYPE_CHECKING:
    from auditship.agents.config import AgentConfig

log = logging.getLogger("auditship.embedded")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0
LOG_NAME = "agent.log"
_RELAYED_LEVELS = {"WARNING": logging.WARNING, "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}


def agent_answers(config: AgentConfig | None = None, timeout_s: float = 0.5) -> bool:
    """True when an agent answers on the control socket of `config` (default: this host's default)."""
    from auditship.agents.cli import request_status
    from auditship.agents.config import AgentConfig

    return request_status(config or AgentConfig(), timeout_s) is not None


def agent_serving(config: AgentConfig, timeout_s: float = 0.5) -> bool:
    """True when the agent answers and every worker is serving (the intake's socket is bound)."""
    from auditship.agents.cli import request_status

    status = request_status(config, timeout_s)
    return status is not None and all(worker.state == "running" for worker in status.workers)


def agent_config(config: AuditConfig) -> AgentConfig:
    """The agent configuration equivalent to an AuditConfig: the sinks its enable_* flags turn on, then
    its destinations (shipper.destinations), whose settings win for their sinks; its retention; its
    endpoint, if it names one; this user's runtime directory."""
    from auditship.agents.config import (
        AgentConfig,
        ConsoleSinkConfig,
        FileSinkConfig,
        RetentionConfig,
        SiemSinkConfig,
        SinksConfig,
        SqlSinkConfig,
    )
    from shipper.destinations import configure_destinations

    if config.retention_days <= 0:
        raise ValueError(f"AuditConfig.retention_days: must be positive, got {config.retention_days}")
    file = FileSinkConfig(
        enabled=config.enable_file_logging,
        max_file_size=config.max_file_size,
        max_files=config.max_files,
        encrypt_sensitive=config.encrypt_sensitive_data,
        batch_size=config.batch_size,
    )
    if config.log_file_path is not None:
        file.path = str(Path(config.log_file_path).absolute())
    sinks = SinksConfig(
        file=file,
        console=ConsoleSinkConfig(enabled=config.enable_console_logging),
        # Without a DatabaseAuditDestination: SQLite in the data directory.
        sql=SqlSinkConfig(enabled=config.enable_database_logging, batch_size=config.batch_size),
        siem=SiemSinkConfig(enabled=config.enable_siem_logging),
    )
    configure_destinations(config.destinations, sinks)
    if sinks.siem.enabled and not sinks.siem.endpoint:
        raise ValueError(
            "AuditConfig: enable_siem_logging: the SIEM sink needs an endpoint; add "
            "SIEMAuditDestination(siem_endpoint=..., api_key=...) to destinations"
        )
    agent = AgentConfig(
        sinks=sinks,
        retention=RetentionConfig(days=config.retention_days, auto_cleanup=config.auto_cleanup),
        runtime_dir=str(endpoint.user_runtime_dir()),
        endpoint=config.endpoint or "",
    )
    agent.data_dir = str(Path(config.data_dir).absolute()) if config.data_dir else str(agent.data_path)
    return agent


class EmbeddedAgent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = config.data_path / LOG_NAME

    def start(self) -> None:
        """Start the agent and wait until every worker serves; RuntimeError, naming its log, if not."""
        try:
            import auditship.agents.supervisor.supervisor  # noqa: F401 - fails early without the agent extra
        except ImportError as exc:
            raise RuntimeError(
                f"the embedded audit-agent needs the agent extra: pip install 'auditship[agent]' ({exc})"
            ) from exc
        import msgspec

        data_dir = self.config.data_path
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        config_path = data_dir / "embedded-agent.toml"
        # 0600: it may hold a database password or a SIEM token.
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as file:
            os.fchmod(fd, 0o600)
            file.write(msgspec.toml.encode(self.config))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "auditship.agents", "run", "--config", str(config_path)],
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
        while not agent_serving(self.config, 0.2):
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
