"""The plain install (`pip install auditship`, no agent extra) on a machine with no agent: audit_context
cannot start an embedded agent, says so, and the service runs on, its events waiting in the spool."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from shipper.records import scan_records
from tests.deploy.hosting import Installs

SERVICE = """
import asyncio
from shipper import AuditConfig, AuditContext, AuditEventType, audit_context, get_emitter
async def main():
    async with audit_context(AuditConfig(), AuditContext("plain")) as audit:
        for n in range(3):
            await audit.log_auth_event(AuditEventType.USER_LOGIN, f"user{n}")
asyncio.run(main())
print(get_emitter().stats.spilled)
"""


def test_without_the_agent_extra_the_block_runs_with_a_warning_and_its_events_are_spooled(
    installs: Installs, tmp_path: Path
) -> None:
    """The service's install lacks the agent's distributions: a WARNING names the extra to install, no
    agent (nor its data directory) is made, and all three events are in the spool for an agent to take."""
    runtime = tmp_path / "run"
    env = {**os.environ, "HOME": str(tmp_path), "AUDITSHIP_RUNTIME_DIR": str(runtime)}
    result = subprocess.run(
        [str(installs.service), "-c", SERVICE],
        env=env,
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "3"), result.stderr
    assert "needs the agent extra: pip install 'auditship[agent]'" in result.stderr
    assert "Events wait in the spool" in result.stderr
    spooled = [r for p in (runtime / "spool").glob("*.spool") for r in scan_records(p.read_bytes())]
    assert len(spooled) == 3
    assert not (tmp_path / "auditship-data").exists(), "no embedded agent was started"
