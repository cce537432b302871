"""audit_context decides once where events go, and never keeps a service from starting: the host's
agent when one is installed or named (events wait in the spool while it is down), an embedded agent
only on a machine with none, and a warning, not an exception, when that cannot start."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import zmq

from auditship.agents.config import RetentionConfig
from auditship.agents.embedded import agent_config, load_seed
from shipper import context as context_module
from shipper import endpoint
from shipper.config import AuditConfig, AuditContext
from shipper.context import audit_context
from shipper.event import AuditEventType
from shipper.records import scan_records
from shipper.seed import seed_settings
from tests.agentproc import AgentDirs, file_events
from tests.waiting import wait_for

SERVICE = AuditContext(service_name="checkout")


@pytest.fixture(autouse=True)
def _nothing_told_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would, before any warning said once."""
    monkeypatch.setattr(context_module, "_told", set())


def _spooled(directory: Path) -> int:
    return sum(len(list(scan_records(p.read_bytes()))) for p in directory.glob("*.spool"))


async def _login(config: AuditConfig) -> None:
    async with audit_context(config, SERVICE) as logger:
        await logger.log_auth_event(AuditEventType.USER_LOGIN, "alice")


def test_with_an_endpoint_named_and_its_agent_down_the_block_runs_and_the_event_waits_in_the_spool(
    dirs: AgentDirs,
) -> None:
    """No embedded agent is started for a named endpoint; the event is spooled beside its socket."""
    dirs.runtime.mkdir(parents=True)
    config = AuditConfig(endpoint=f"ipc://{dirs.runtime / 'intake.sock'}")
    asyncio.run(_login(config))
    assert _spooled(dirs.runtime / "spool") == 1
    assert not dirs.data.exists(), "no embedded agent was started"


def test_on_a_host_with_an_agent_installed_sink_settings_are_said_to_be_unused_once(
    dirs: AgentDirs, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The host's agent decides the sinks: a config asking for its own is told so, once, by name."""
    mark = dirs.root / "agent.toml"
    mark.write_text("")
    monkeypatch.setenv("AUDITSHIP_INSTALL_MARKS", str(mark))
    config = AuditConfig(endpoint=f"ipc://{dirs.runtime / 'intake.sock'}", enable_database_logging=True)
    with caplog.at_level(logging.WARNING, logger="auditship"):
        asyncio.run(_login(config))
        asyncio.run(_login(config))
    told = [r.getMessage() for r in caplog.records if "enable_database_logging" in r.getMessage()]
    assert len(told) == 1
    assert "host's audit-agent decides them" in told[0]
    assert not dirs.data.exists(), "no embedded agent was started"


def test_on_a_host_with_only_an_install_mark_events_wait_in_the_spool_and_sinks_are_said_unused_once(
    dirs: AgentDirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No endpoint named, the host's agent installed but not running: no embedded agent starts, both
    blocks' events are spooled for it, and the config's own sinks are said to be unused once, not once a
    block (checked in a process of its own, whose process-wide emitter aims at the host's agent)."""
    mark = dirs.root / "agent.toml"
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.write_text("")
    monkeypatch.setenv("AUDITSHIP_INSTALL_MARKS", str(mark))
    script = (
        "import asyncio\n"
        "from shipper import AuditConfig, AuditContext, AuditEventType, audit_context, get_emitter\n"
        "async def main():\n"
        "    config = AuditConfig(enable_database_logging=True)\n"
        "    async with audit_context(config, AuditContext('svc')) as audit:\n"
        "        await audit.log_auth_event(AuditEventType.USER_LOGIN, 'bob')\n"
        "asyncio.run(main())\n"
        "asyncio.run(main())\n"
        "print(get_emitter().stats.spilled)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout.strip()) == (0, "2"), result.stderr
    assert result.stderr.count("enable_database_logging") == 1, result.stderr
    assert "the host's audit-agent decides them" in result.stderr
    assert _spooled(dirs.runtime / "spool") == 2
    assert not dirs.data.exists(), "no embedded agent was started"


def test_with_embedded_off_and_no_agent_the_block_runs_and_events_wait_in_the_spool(dirs: AgentDirs) -> None:
    """embedded='off': nothing is started; the default emitter spools (checked in a process of its own,
    whose process-wide emitter is made with this test's directories)."""
    script = (
        "import asyncio\n"
        "from shipper import AuditConfig, AuditContext, AuditEventType, audit_context, get_emitter\n"
        "async def main():\n"
        "    async with audit_context(AuditConfig(embedded='off'), AuditContext('svc')) as audit:\n"
        "        await audit.log_auth_event(AuditEventType.USER_LOGIN, 'bob')\n"
        "asyncio.run(main())\n"
        "print(get_emitter().stats.spilled)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout.strip()) == (0, "1"), result.stderr
    assert not dirs.data.exists()


def test_an_embedded_agent_that_cannot_start_is_a_warning_in_auto_and_an_error_when_asked_for(
    dirs: AgentDirs, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Its data directory is a file: auto warns and the block runs; on raises."""
    monkeypatch.delenv("AUDITSHIP_DATA_DIR")  # it would win over AuditConfig.data_dir
    dirs.root.mkdir(exist_ok=True)
    blocked = dirs.root / "not-a-directory"
    blocked.write_text("")
    with caplog.at_level(logging.WARNING, logger="auditship"):
        asyncio.run(_login(AuditConfig(data_dir=blocked)))
    assert any("embedded one could not start" in r.getMessage() for r in caplog.records)
    with pytest.raises(OSError):
        asyncio.run(_login(AuditConfig(data_dir=blocked, embedded="on")))


def test_the_contexts_compliance_requirements_reach_the_embedded_agent(tmp_path: Path) -> None:
    """The presets among them (other labels pass) become the agent's `compliance`, and its retention is
    raised to their strictest floor rather than failing its start; a longer one is kept."""
    seed = seed_settings(AuditConfig(retention_days=30), ["GDPR", "SOX", "ISO9001"])
    assert seed.compliance == ["sox", "gdpr"]
    path = tmp_path / "seed.toml"
    path.write_bytes(msgspec.toml.encode(seed))
    config = load_seed(path)
    assert config.compliance == ["sox", "gdpr"] and config.retention.days == 2557
    path.write_bytes(msgspec.toml.encode(seed_settings(AuditConfig(retention_days=4000), ["pci"])))
    assert load_seed(path).retention.days == 4000


def test_retention_and_the_flush_interval_reach_the_agent_and_the_emitter(caplog: pytest.LogCaptureFixture):
    """retention_days and auto_cleanup configure the embedded agent's retention; flush_interval_seconds
    is the emitter's linger, at most 1 s (said once when more is asked)."""
    config = AuditConfig(retention_days=30, auto_cleanup=False)
    assert agent_config(config).retention == RetentionConfig(days=30, auto_cleanup=False)
    with pytest.raises(ValueError, match="retention_days"):
        agent_config(AuditConfig(retention_days=0))
    assert context_module._linger_s(AuditConfig(flush_interval_seconds=0.2)) == 0.2
    with caplog.at_level(logging.WARNING, logger="auditship"):
        assert context_module._linger_s(AuditConfig(flush_interval_seconds=30)) == 1.0
    assert any("flush_interval_seconds=30" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="flush_interval_seconds"):
        context_module._linger_s(AuditConfig(flush_interval_seconds=-1))


@pytest.mark.slow
def test_two_blocks_in_one_process_each_with_an_embedded_agent_lose_nothing_and_keep_stderr_quiet(
    dirs: AgentDirs,
) -> None:
    """The second block's agent is a new one, which the emitter reconnects to; every event of both
    blocks arrives once. The embedded agent logs to agent.log in its data directory, not to stderr."""
    script = (
        "import asyncio, json\n"
        "from shipper import AuditConfig, AuditContext, AuditEventType, audit_context, get_emitter\n"
        "async def block(first):\n"
        "    config = AuditConfig(flush_interval_seconds=0.2)\n"
        "    async with audit_context(config, AuditContext('twice')) as audit:\n"
        "        for n in range(first, first + 50):\n"
        "            await audit.log_auth_event(AuditEventType.USER_LOGIN, f'user{n}')\n"
        "        return get_emitter().linger_ms\n"
        "linger = asyncio.run(block(0))\n"
        "asyncio.run(block(50))\n"
        "stats = get_emitter().stats\n"
        "print(json.dumps({'linger_ms': linger, 'dropped': stats.dropped, 'pending': stats.pending}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"linger_ms": 200.0, "dropped": 0, "pending": 0}
    assert " INFO " not in result.stderr, result.stderr
    assert " INFO " in (dirs.data / "agent.log").read_text()
    assert (dirs.data / "embedded-agent.toml").stat().st_mode & 0o777 == 0o600, "it may hold secrets"
    users = sorted(str(e["user_id"]) for e in file_events(dirs.data) if e.get("service_name") == "twice")
    assert users == sorted(f"user{n}" for n in range(100))


@pytest.mark.slow
def test_the_embedded_agents_warnings_reach_the_auditship_embedded_logger_and_its_info_stays_in_its_log(
    dirs: AgentDirs, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """A frame of random bytes sent to the embedded agent is rejected with a WARNING: it reaches this
    process's `auditship.embedded` logger; the agent's INFO lines go to agent.log only, never to stderr."""

    async def block() -> None:
        async with audit_context(AuditConfig(embedded="on"), SERVICE):
            with zmq.Context() as context, context.socket(zmq.PUSH) as push:
                push.connect(endpoint.intake_endpoint())
                push.send(b"\x00not a frame")
                wait_for(lambda: _relayed_warnings(caplog), 30, "the reject's warning, relayed")

    with caplog.at_level(logging.DEBUG, logger="auditship.embedded"):
        asyncio.run(block())
    relayed = [r for r in caplog.records if r.name == "auditship.embedded"]
    assert any("rejected a 12-byte frame" in r.getMessage() for r in relayed), relayed
    assert all(r.levelno >= logging.WARNING for r in relayed if "embedded audit-agent:" in r.getMessage())
    assert " INFO " in (dirs.data / "agent.log").read_text()
    assert " INFO " not in capfd.readouterr().err


def _relayed_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "auditship.embedded" and r.levelno == logging.WARNING and "rejected" in r.getMessage()
    ]
