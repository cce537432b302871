"""A real agent's digests: written on time while it runs, declaring the WAL seqs a crash skipped, picking
up after a kill -9, and recording what it finds changed in its own current file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from auditship.ondisk import file_sink
from auditship.ondisk.digests import Digest, chain_dir, digest_name, numbers, read_digest
from auditship.query.cli import main
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType
from tests.agentproc import AgentDirs, RunningAgent
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

CONFIG = """
[wal]
fsync = "never"
[supervisor]
stats_interval_s = 0.2
[sinks.file]
fsync = false
flush_interval_s = 0.05
[sinks.parquet]
flush_interval_s = 0.2
[integrity]
digest_interval_s = 0.5
digest_min_interval_s = 0.2
"""


def digests(data: Path, sink: str) -> list[Digest]:
    directory = chain_dir(data, sink)
    return [read_digest(directory / digest_name(number)).digest for number in numbers(directory)]


def emit(agent: RunningAgent, count: int, start: int = 0) -> None:
    emitter = Emitter(agent.config.intake_endpoint)
    for number in range(start, start + count):
        emitter.emit(
            AuditEvent(event_type=AuditEventType.DATA_READ, user_id=f"u{number}", service_name="svc")
        )
    assert emitter.flush(30)
    emitter.close()
    wait_for(lambda: delivered(agent), 30, "both sinks to deliver what the intake took")


def delivered(agent: RunningAgent) -> bool:
    last = agent.counters("intake").get("last_seq", 0)
    return bool(last) and all(
        agent.counters(f"sink:{s}").get("committed", -1) >= last for s in ("file", "parquet")
    )


def verify(dirs: AgentDirs, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str]]:
    status = main(["verify", "--data-dir", str(dirs.data), "--keys-dir", str(dirs.keys), "--format", "json"])
    report = msgspec.json.decode(capsys.readouterr().out)
    return status, {f["path"]: f["verdict"] for f in report["findings"] if f["verdict"] != "valid"}


@pytest.fixture
def agent(dirs: AgentDirs) -> Iterator[RunningAgent]:
    running = RunningAgent(dirs, CONFIG).start()
    yield running
    running.stop()


def test_while_the_agent_runs_its_writes_are_digested_within_the_interval(
    dirs: AgentDirs, agent: RunningAgent
) -> None:
    """Without a rotation or a stop: the current file's growth gets an interval digest, the parts a parts
    digest, each a fraction of a second after the write."""
    emit(agent, 50)
    wait_for(
        lambda: any(d.current and d.current.events == 50 for d in digests(dirs.data, "file")),
        10,
        "a digest claiming the file's 50 events",
    )
    wait_for(
        lambda: sum(o.events or 0 for d in digests(dirs.data, "parquet") for o in d.objects) == 50,
        10,
        "digests listing parts that hold the 50 events",
    )
    assert {d.reason for d in digests(dirs.data, "file")} >= {"start", "interval"}
    assert all(not d.final for d in digests(dirs.data, "file"))


def test_after_a_kill_the_skipped_seqs_are_declared_and_everything_verifies(
    dirs: AgentDirs, agent: RunningAgent, capsys: pytest.CaptureFixture[str]
) -> None:
    """kill -9 of every agent process: what was written after the last digest is pending, not a failure;
    the next start digests it, and the WAL seqs the crash skipped (the rest of the seq reservation) are
    declared as a hole, so the drained agent's directory verifies whole."""
    emit(agent, 100)
    agent.kill_everything()
    status, problems = verify(dirs, capsys)
    assert status == 0 and set(problems.values()) <= {"pending"}

    agent.start()
    emit(agent, 100, start=100)
    assert agent.terminate(60) == 0

    status, problems = verify(dirs, capsys)
    assert problems == {} and status == 0
    for sink in ("file", "parquet"):
        holes = [gap for d in digests(dirs.data, sink) for gap in d.gaps]
        assert holes and holes[0][0] == 101, f"{sink}: the skipped seqs are declared"


def test_the_current_file_changed_while_the_agent_was_stopped_stays_reported_after_it_is_rotated(
    dirs: AgentDirs, capsys: pytest.CaptureFixture[str]
) -> None:
    """The agent finds its current file's digested prefix changed when it starts, logs it, and records it
    on the file: once rotated and compressed, the closed file hashes as digested, but is still reported
    modified."""
    agent = RunningAgent(dirs, CONFIG).start()
    emit(agent, 20)
    assert agent.terminate(60) == 0
    current = dirs.data / "files" / "audit.jsonl"
    current.write_bytes(current.read_bytes().replace(b'"user_id":"u3"', b'"user_id":"u4"', 1))

    small_files = CONFIG.replace("flush_interval_s = 0.05", "flush_interval_s = 0.05\nmax_file_size = 6000")
    rotating = RunningAgent(dirs, small_files).start()
    emit(rotating, 40, start=20)
    assert rotating.terminate(60) == 0
    assert "changed after a digest claimed them" in rotating.log()

    status, problems = verify(dirs, capsys)
    closed = file_sink.closed_files(dirs.data / "files", "audit")[0]
    assert status == 1
    assert problems[closed.path.relative_to(dirs.data).as_posix()] == "modified"
