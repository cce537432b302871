"""An agent started by the service itself, for `audit_context` when no agent answers on this host.

It is the same `audit-agent` code in child processes (`python -m agents run`), configured from the
service's AuditConfig, so the seed's Quick Start works on a laptop with nothing installed but the
package. On a server the systemd-managed agent is there and this is never used.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from shipper.config import AuditConfig

if TYPE_CHECKING:
    from agents.config import AgentConfig

log = logging.getLogger("auditship.embedded")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0


def agent_answers(config: AgentConfig | None = None, timeout_s: float = 0.5) -> bool:
    """True when an agent answers on the control socket of `config` (default: this host's default)."""
    from agents.cli import request_status
    from agents.config import AgentConfig

    return request_status(config or AgentConfig(), timeout_s) is not None


def agent_serving(config: AgentConfig, timeout_s: float = 0.5) -> bool:
    """True when the agent answers and every worker is serving (the intake's socket is bound)."""
    from agents.cli import request_status

    status = request_status(config, timeout_s)
    return status is not None and all(worker.state == "running" for worker in status.workers)


def agent_config(config: AuditConfig) -> AgentConfig:
    """The agent configuration equivalent to an AuditConfig: the sinks its enable_* flags turn on, then
    its destinations (shipper.destinations), whose settings win for their sinks."""
    from agents.config import (
        AgentConfig,
        ConsoleSinkConfig,
        FileSinkConfig,
        SiemSinkConfig,
        SinksConfig,
        SqlSinkConfig,
    )
    from shipper.destinations import configure_destinations

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
    agent = AgentConfig(sinks=sinks)
    agent.data_dir = str(Path(config.data_dir).absolute()) if config.data_dir else str(agent.data_path)
    return agent


class EmbeddedAgent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        try:
            import agents.supervisor.supervisor  # noqa: F401 - fails early without the agent extra
        except ImportError as exc:
            raise RuntimeError(
                "no audit-agent answers on this host, and the embedded agent needs the agent extra: "
                "pip install 'auditship[agent]'"
            ) from exc
        import msgspec

        data_dir = self.config.data_path
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        config_path = data_dir / "embedded-agent.toml"
        config_path.write_bytes(msgspec.toml.encode(self.config))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agents", "run", "--config", str(config_path)], env=os.environ.copy()
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not agent_serving(self.config, 0.2):
            if self.process.poll() is not None:
                raise RuntimeError(f"the embedded audit-agent exited with code {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the embedded audit-agent did not answer within {START_TIMEOUT_S:.0f}s")
        log.info("embedded audit-agent started (pid %d, data in %s)", self.process.pid, data_dir)

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
