"""A data directory a real agent wrote, with everything `audit-query verify` must accept as valid: files
rotated and deleted past max_files, parts merged by compaction, old ones removed by retention; and a
copy of it as it was half way, to roll back to.

Run 1 writes events of 2020 (a day retention removes), rotates the signing key, and then writes events of
today, in batches small enough to
rotate the file every few dozen events and to write several parts per partition. Between the runs the
parts' mtimes are set two hours back, so that compaction (parts older than an hour) merges them as soon
as run 2 writes its first batch; run 2's retention (at start, 365 days) removes 2020's partitions and the
closed files holding only 2020's events.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import msgspec
import pytest

from auditship.agents.cli import main as agent_main
from auditship.ondisk.lake_layout import partitions, parts
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType
from tests.agentproc import AgentDirs, RunningAgent
from tests.waiting import wait_for

CONFIG = """
[wal]
fsync = "never"
[supervisor]
stats_interval_s = 0.2
[sinks.file]
fsync = false
max_file_size = 20000
max_files = 2
batch_size = 50
flush_interval_s = 0.05
[sinks.parquet]
flush_interval_s = 0.2
max_rows = 100
[integrity]
digest_interval_s = 1.0
digest_min_interval_s = 0.2
[retention]
days = 365
"""
OLD = datetime(2020, 1, 1, tzinfo=UTC)
SERVICES = ("svc0", "svc1", "svc2")


class Written(NamedTuple):
    root: Path
    data: Path
    keys: Path
    earlier: Path
    """The data directory as it was after run 1."""
    first_key: Path
    """The public key of the signing key before `keys rotate --signing` in run 1."""


def write(dirs: AgentDirs) -> Written:
    sent = 0
    first_key = dirs.root / "first-key.pem"
    with running(dirs) as agent:
        sent = emit(agent, sent, 300, OLD)
        # The signing key rotated under the running agent: its next digests name and use the new key.
        config = ["--config", str(dirs.config_file)]
        assert agent_main(["keys", "export-public", *config, "--output", str(first_key)]) == 0
        assert agent_main(["keys", "rotate", "--signing", *config]) == 0
        for _ in range(3):  # three flushes apart: several parts in each of today's partitions
            sent = emit(agent, sent, 50, None)
    earlier = dirs.root / "earlier"
    shutil.copytree(dirs.data, earlier, symlinks=True)
    two_hours_ago = time.time() - 7200
    for directory in partitions(dirs.data / "lake"):
        for part in parts(directory):
            os.utime(part.path, (two_hours_ago, two_hours_ago))
    with running(dirs) as agent:
        emit(agent, sent, 60, None)
    return Written(dirs.root, dirs.data, dirs.keys, earlier, first_key)


@contextmanager
def running(dirs: AgentDirs) -> Iterator[RunningAgent]:
    """The agent, found by emitters through the environment, drained (final digests) at the end."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in dirs.env().items():
            patch.setenv(key, value)
        patch.delenv("AUDITSHIP_ENDPOINT", raising=False)
        agent = RunningAgent(dirs, CONFIG).start()
        try:
            yield agent
            assert agent.terminate(60) == 0, agent.log()
        finally:
            agent.stop()


def emit(agent: RunningAgent, sent: int, count: int, moment: datetime | None) -> int:
    """`count` events (at `moment` and a second apart, or now), waited for in both sinks."""
    emitter = Emitter(agent.config.intake_endpoint)
    for index in range(count):
        number = sent + index
        event = AuditEvent(
            event_type=AuditEventType.DATA_READ,
            user_id=f"user{number}",
            service_name=SERVICES[number % len(SERVICES)],
            resource_type="document",
            resource_id=str(number),
            message=f"read document {number}",
            # Some with an envelope, which verify checks is one.
            sensitive={"ssn": f"000-00-{number:04d}"} if number % 7 == 0 else {},
        )
        if moment is not None:
            event = msgspec.structs.replace(event, timestamp=moment + timedelta(seconds=number))
        emitter.emit(event)
    assert emitter.flush(30)
    emitter.close()
    wait_for(lambda: _delivered(agent), 60, "both sinks to deliver everything the intake took")
    return sent + count


def _delivered(agent: RunningAgent) -> bool:
    last = agent.counters("intake").get("last_seq", 0)
    return bool(last) and all(
        agent.counters(f"sink:{s}").get("committed", -1) >= last for s in ("file", "parquet")
    )
