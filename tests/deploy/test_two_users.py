"""Deployed as docs/deploy.md says: the agent as its own user, a service as another user in the agent's
group, the service started first, the agent down while it emits. Nothing is lost, nothing is stored
twice, and no sensitive value reaches a disk in clear.

The users and directories are made the way the unit and its tmpfiles.d line make them (runtime dir
0750 and data dir 0700 owned by the agent, spool 3730 agent:group), under /tmp instead of /run, /var/lib
and /var/spool. Each side has its own install, from Debian's Python as other users can run it: the
service the plain `pip install auditship`, the agent `auditship[agent]` (both editable installs of this
checkout, kept in /tmp between runs while pyproject.toml is unchanged). It needs root to create users
and switch to them (CI runs as root).
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditship.agents.config import AgentConfig
from shipper.control import request_status
from tests.agentproc import file_events
from tests.services import require
from tests.waiting import wait_for

PROJECT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
GROUP = "astest"
AGENT_USER = "astest-agent"
SERVICE_USER = "astest-svc"
SECRET = "4111-1111-1111-1111"
AGENT_TOML = """
[wal]
fsync = "never"
[sinks.file]
fsync = false
[sinks.parquet]
enabled = false
"""
# The service: emits 1,000 events through the process-wide emitter, every tenth with a card number,
# then waits (bounded) until flush() says everything is confirmed or spooled, and prints its counters.
SERVICE = f"""
import json, sys, time
from shipper import AuditEvent, AuditEventType, emit, get_emitter
service = sys.argv[1]
for n in range(1000):
    sensitive = {{"card": "{SECRET}"}} if n % 10 == 0 else {{}}
    emit(AuditEvent(event_type=AuditEventType.DATA_READ, service_name=service, details={{"n": n}},
                    sensitive=sensitive))
deadline = time.monotonic() + float(sys.argv[2])
flushed = get_emitter().flush(1)
while not flushed and time.monotonic() < deadline:
    flushed = get_emitter().flush(1)
stats = get_emitter().stats
print(json.dumps({{"flushed": flushed, "spilled": stats.spilled, "dropped": stats.dropped,
                  "confirmed": stats.confirmed, "pending": stats.pending}}))
"""


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


def _ensure_users() -> None:
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        _run("groupadd", "--system", GROUP)
    for user, extra in ((AGENT_USER, ["-g", GROUP]), (SERVICE_USER, ["-U", "-G", GROUP])):
        try:
            pwd.getpwnam(user)
        except KeyError:
            _run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", *extra, user)


class Installs:
    """The agent's install and the service's, each a virtualenv other users can run."""

    def __init__(self) -> None:
        key = hashlib.sha256((PROJECT / "pyproject.toml").read_bytes()).hexdigest()[:12]
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


@pytest.fixture(scope="module")
def installs() -> Installs:
    require(os.geteuid() == 0 and shutil.which("setpriv") is not None, "needs root and setpriv (CI has both)")
    require(SYSTEM_PYTHON.exists(), f"needs {SYSTEM_PYTHON} (Debian's python3), which other users can run")
    _ensure_users()
    return Installs()


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
        for path, mode in ((self.runtime, 0o750), (self.data, 0o700), (self.spool, 0o3730)):
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

    def stop_agent(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            assert self.agent.wait(60) == 0, self.log()

    def service(self, name: str, wait_s: float) -> subprocess.Popen[str]:
        """A service as SERVICE_USER, with the agent's group as a supplementary one (the drop-in's
        SupplementaryGroups=), started now and left running."""
        return subprocess.Popen(
            [
                "setpriv",
                f"--reuid={SERVICE_USER}",
                f"--regid={SERVICE_USER}",
                f"--groups={GROUP}",
                str(self.installs.service),
                "-c",
                SERVICE,
                name,
                str(wait_s),
            ],
            env=self.env(),
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def log(self) -> str:
        path = self.root / "agent.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@pytest.fixture
def host(installs: Installs) -> Iterator[Host]:
    root = Path(tempfile.mkdtemp(prefix="as-dep-", dir="/tmp"))
    deployment = Host(root, installs)
    yield deployment
    if deployment.agent is not None and deployment.agent.poll() is None:
        deployment.agent.kill()
        deployment.agent.wait(10)
    shutil.rmtree(root, ignore_errors=True)


def _delivered(host: Host, service: str) -> list[int]:
    return sorted(
        int(e["details"]["n"])  # type: ignore[index, call-overload]
        for e in file_events(host.data)
        if e.get("service_name") == service
    )


def _no_secret_in_clear(*directories: Path) -> None:
    for directory in directories:
        for path in directory.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), f"{path} holds a card number in clear"


def test_a_service_in_the_group_spools_while_the_agent_is_down_and_everything_arrives_once(host: Host):
    """The agent ran once (as at install: its key is in the spool), then stopped. A service of another
    user emits 1,000 events, 100 with a card number: all spool (sealed), the service exits. The agent
    comes back and delivers each event once; the card number is nowhere in clear."""
    host.start_agent()
    host.stop_agent()
    left = sorted(p.name for p in host.runtime.iterdir())
    assert left == ["overflow", "spool"], f"a clean stop leaves no socket or lock behind: {left}"
    service = host.service("payments", wait_s=10)
    out, err = service.communicate(timeout=120)
    assert service.returncode == 0, err
    report = json.loads(out)
    assert report == {"flushed": True, "spilled": 1000, "dropped": 0, "confirmed": 0, "pending": 0}, err
    spooled = [p for p in host.spool.iterdir() if p.suffix == ".spool"]
    assert spooled and all(p.stat().st_gid == grp.getgrnam(GROUP).gr_gid for p in spooled)
    host.start_agent()
    wait_for(lambda: len(_delivered(host, "payments")) >= 1000, 60, "1,000 events in the file sink")
    assert _delivered(host, "payments") == list(range(1000))
    host.stop_agent()
    _no_secret_in_clear(host.data, host.spool)


def test_a_service_started_before_the_agent_ever_ran_holds_what_it_cannot_seal_until_the_agent_is_up(
    host: Host,
):
    """No agent has ever run: no key to seal to. The service spools the 900 plain events, keeps the 100
    sensitive ones in memory, and sends them once the agent starts; all 1,000 arrive once."""
    service = host.service("billing", wait_s=90)
    wait_for(lambda: any(p.suffix == ".spool" for p in host.spool.iterdir()), 30, "the service's spool file")
    host.start_agent()
    out, err = service.communicate(timeout=120)
    assert service.returncode == 0, err
    report = json.loads(out)
    assert (report["flushed"], report["dropped"], report["pending"]) == (True, 0, 0), (report, err)
    wait_for(lambda: len(_delivered(host, "billing")) >= 1000, 60, "1,000 events in the file sink")
    assert _delivered(host, "billing") == list(range(1000))
    host.stop_agent()
    _no_secret_in_clear(host.data, host.spool)
