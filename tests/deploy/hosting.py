"""A deployment as docs/deploy.md makes it, for the tests of this directory: the agent as its own user,
services (and an attacker) as other users in the agent's group.

The users and directories are made the way the unit and its tmpfiles.d line make them (runtime dir
0750 and data dir 0700 owned by the agent, spool 3730 agent:group), under /tmp instead of /run, /var/lib
and /var/spool. Each side has its own install, from Debian's Python as other users can run it: the
service the plain `pip install auditship`, the agent `auditship[agent]` (both editable installs of this
checkout, kept in /tmp between runs while its pyproject.toml is unchanged). It needs root to create
users and switch to them (CI runs as root).
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from auditship.agents.config import AgentConfig
from shipper.control import WorkerStatus, request_status
from tests.waiting import wait_for

PROJECT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
GROUP = "astest"
AGENT_USER = "astest-agent"
SERVICE_USER = "astest-svc"
ATTACKER_USER = "astest-evil"
"""Another user in the agent's group: it may reach the intake, as any service of the host may."""
SECRET = "4111-1111-1111-1111"
AGENT_TOML = """
[wal]
fsync = "never"
[sinks.file]
fsync = false
[sinks.parquet]
enabled = false
"""


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


def ensure_users() -> None:
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        _run("groupadd", "--system", GROUP)
    users = (
        (AGENT_USER, ["-g", GROUP]),
        (SERVICE_USER, ["-U", "-G", GROUP]),
        (ATTACKER_USER, ["-U", "-G", GROUP]),
    )
    for user, extra in users:
        try:
            pwd.getpwnam(user)
        except KeyError:
            _run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", *extra, user)


class Installs:
    """The agent's install and the service's, each a virtualenv other users can run."""

    def __init__(self) -> None:
        # Per checkout too: an editable install runs the checkout it was made from (worktrees differ).
        key = hashlib.sha256(bytes(PROJECT) + (PROJECT / "pyproject.toml").read_bytes()).hexdigest()[:12]
        base = Path("/tmp/auditship-deploy-venvs") / key
        self.agent = self._venv(base / "agent", f"{PROJECT}[agent]")
        self.service = self._venv(base / "service", str(PROJECT))

    @staticmethod
    def _venv(path: Path, requirement: str) -> Path:
        python = path / "bin" / "python"
        if not (path / "ready").exists():
            shutil.rmtree(path, ignore_errors=True)
            _run(str(SYSTEM_PYTHON), "-m", "venv", str(path))
            _run(str(python), "-m", "pip", "install", "-q", "-e", requirement)
            (path / "ready").touch()
        return python


class Host:
    """The directories of one deployment, and the agent and services run as their users."""

    def __init__(self, root: Path, installs: Installs) -> None:
        self.installs = installs
        self.root = root
        self.runtime = root / "run"
        self.data = root / "data"
        self.spool = root / "spool"
        self.config = root / "agent.toml"
        self.agent: subprocess.Popen[bytes] | None = None
        root.chmod(0o755)
        agent, group = pwd.getpwnam(AGENT_USER).pw_uid, grp.getgrnam(GROUP).gr_gid
        self.keys = root / "keys"  # keys_dir, beside agent.toml, made at install as docs/deploy.md says
        for path, mode in (
            (self.runtime, 0o750),
            (self.data, 0o700),
            (self.spool, 0o3730),
            (self.keys, 0o700),
        ):
            path.mkdir()
            os.chown(path, agent, group)
            path.chmod(mode)
        self.config.write_text(AGENT_TOML)
        self.config.chmod(0o644)

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("AUDITSHIP_")}
        return {
            **keep,
            "HOME": str(self.root),
            "AUDITSHIP_RUNTIME_DIR": str(self.runtime),
            "AUDITSHIP_DATA_DIR": str(self.data),
            "AUDITSHIP_SPOOL_DIR": str(self.spool),
        }

    def start_agent(self) -> None:
        # As the unit: its own user and group, UMask=0007 so that the group reaches the sockets.
        command = f"umask 0007; exec {self.installs.agent} -m auditship.agents run --config {self.config}"
        as_agent = ["setpriv", f"--reuid={AGENT_USER}", f"--regid={GROUP}", "--init-groups"]
        with (self.root / "agent.log").open("ab") as log:
            self.agent = subprocess.Popen(
                [*as_agent, "sh", "-c", command],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._serving, 60, f"the agent to serve (log: {self.root / 'agent.log'})")

    def _serving(self) -> bool:
        assert self.agent is not None
        if self.agent.poll() is not None:
            raise AssertionError(f"agent exited with {self.agent.returncode}: {self.log()}")
        config = AgentConfig(runtime_dir=str(self.runtime))
        status = request_status(config.runtime_path, 1.0)
        return status is not None and all(w.state == "running" for w in status.workers)

    def intake(self) -> WorkerStatus:
        """The running intake's status (its pid, its counters), as `audit-agent status` shows it."""
        status = request_status(AgentConfig(runtime_dir=str(self.runtime)).runtime_path, 2.0)
        assert status is not None, self.log()
        return next(worker for worker in status.workers if worker.name == "intake")

    def stop_agent(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            assert self.agent.wait(60) == 0, self.log()

    def python_as(self, user: str, code: str, *args: str) -> subprocess.Popen[str]:
        """`code` run by the service install's Python as `user`, with the agent's group as a
        supplementary one (the drop-in's SupplementaryGroups=), started now and left running; its
        stdin, stdout and stderr are pipes."""
        return subprocess.Popen(
            [
                "setpriv",
                f"--reuid={user}",
                f"--regid={user}",
                f"--groups={GROUP}",
                str(self.installs.service),
                "-c",
                code,
                *args,
            ],
            env=self.env(),
            cwd=self.root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def log(self) -> str:
        path = self.root / "agent.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""
