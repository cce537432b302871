"""A full data disk loses nothing a living service emitted: the intake holds its batch and says so in
status (since when, what waits) and in the log (once, then slowly); emitters whose spool is on the same
full disk spill to the overflow spool in the runtime directory; when space returns everything arrives,
once. The data filesystem is a small tmpfs the test mounts (as root, as CI runs)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipper.emitter import Emitter
from tests.agentproc import QUICK_CONFIG, AgentDirs, RunningAgent, file_events
from tests.producers import numbered_event
from tests.services import require
from tests.waiting import wait_for

pytestmark = pytest.mark.slow
EVENTS = 2_000


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True)
    if os.geteuid() != 0:
        return False
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=False
        ).returncode
        == 0
    )


@pytest.fixture
def full_disk_agent() -> Iterator[tuple[RunningAgent, Path]]:
    """An agent whose data directory and spool are on an 8 MiB tmpfs; its runtime dir is elsewhere."""
    dirs = AgentDirs()
    disk = dirs.root / "disk"
    mounted = _mount_tmpfs(disk, "8m")
    try:
        require(mounted, "mounting a tmpfs needs root and mount permission (CI has both)")
        dirs.data = disk / "data"
        # spool_dir is a top-level key: before the first table.
        config = f'spool_dir = "{disk / "spool"}"\n' + QUICK_CONFIG + "[sinks.parquet]\nenabled = false\n"
        with pytest.MonkeyPatch.context() as patch:
            for key, value in dirs.env().items():
                patch.setenv(key, value)
            patch.delenv("AUDITSHIP_ENDPOINT", raising=False)
            patch.setenv("AUDITSHIP_SPOOL_DIR", str(disk / "spool"))
            agent = RunningAgent(dirs, config).start()
            try:
                yield agent, disk
            finally:
                agent.stop()
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], check=False)
        dirs.cleanup()


def _fill(disk: Path) -> Path:
    """Write until the filesystem refuses; the file that holds the space."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb") as out:
        for _ in range(100_000):  # far more than 8 MiB: the loop ends at ENOSPC
            try:
                out.write(chunk)
                out.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    return filler


def _intake_problem(agent: RunningAgent) -> str | None:
    status = agent.status()
    assert status is not None
    return next(w for w in status.workers if w.name == "intake").problem


def test_a_full_data_disk_loses_nothing_and_says_so_until_space_returns(
    full_disk_agent: tuple[RunningAgent, Path],
) -> None:
    """2,000 events emitted while the data disk (WAL, files, spool) is full: status names the problem,
    emitters spill to the overflow spool, nothing is dropped; once space returns, all arrive once."""
    agent, disk = full_disk_agent
    filler = _fill(disk)
    emitter = Emitter()
    try:
        for number in range(EVENTS):
            emitter.emit(numbered_event("full-disk", number))
        wait_for(lambda: agent.counters("intake").get("write_errors", 0) > 0, 30, "a failed WAL append")
        problem = _intake_problem(agent)
        assert problem is not None and "No space left" in problem and "since" in problem
        overflow = agent.dirs.runtime / "overflow"
        wait_for(lambda: any(overflow.glob("*.spool")), 30, "emitters spilling to the overflow spool")
        assert emitter.stats.dropped == 0
        filler.unlink()
        assert emitter.flush(30), emitter.stats

        def delivered() -> list[int]:
            return sorted(
                int(e["details"]["n"])  # type: ignore[index, call-overload]
                for e in file_events(agent.dirs.data)
                if e.get("user_id") == "full-disk"
            )

        wait_for(lambda: len(delivered()) >= EVENTS, 60, f"{EVENTS} events in the file sink")
        assert delivered() == list(range(EVENTS))
        wait_for(lambda: _intake_problem(agent) is None, 10, "the problem to clear")
    finally:
        emitter.close(0)
    failing_lines = [line for line in agent.log().splitlines() if "WAL append failing" in line]
    assert 1 <= len(failing_lines) <= 3, failing_lines
    assert "WAL append works again" in agent.log()


def test_a_stop_while_the_wal_cannot_be_written_ends_the_agent_cleanly_and_nothing_is_lost(
    full_disk_agent: tuple[RunningAgent, Path],
) -> None:
    """SIGTERM while the intake retries a WAL append on a full disk: the intake gives the batch up
    unconfirmed (and out of the dedupe index) and stops, so the agent exits 0 without waiting out its
    drain (the intake used to ignore the Stop until it was killed: exit 1). Once space returns and the
    agent starts again, every event arrives, once: the emitter kept or spilled the batch."""
    agent, disk = full_disk_agent
    filler = _fill(disk)
    emitter = Emitter()
    try:
        for number in range(EVENTS):
            emitter.emit(numbered_event("stopped", number))
        wait_for(lambda: agent.counters("intake").get("write_errors", 0) > 0, 30, "a failed WAL append")
        assert agent.terminate(60) == 0
        log = agent.log()
        assert "stopping with" in log and "events not written to the WAL" in log
        assert "did not" not in log
        filler.unlink()
        agent.start()

        def delivered() -> list[int]:
            return sorted(
                int(e["details"]["n"])  # type: ignore[index, call-overload]
                for e in file_events(agent.dirs.data)
                if e.get("user_id") == "stopped"
            )

        # Not flush(): the new agent never heard of the window, and the sending thread spills it.
        wait_for(lambda: len(delivered()) >= EVENTS, 60, f"{EVENTS} events in the file sink")
        assert delivered() == list(range(EVENTS))
        assert emitter.stats.dropped == 0
    finally:
        emitter.close(0)
