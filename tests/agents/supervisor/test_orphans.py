"""Workers die with their supervisor, and a starting supervisor stops what an earlier one left running:
real processes, real locks, no agent."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditship.agents.supervisor import orphans
from tests.waiting import wait_for

HOLD_LOCK = """
import sys, time
from pathlib import Path
from auditship.agents.supervisor import orphans
orphans.claim(Path(sys.argv[1]), sys.argv[2])
print("holding", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes that hold a worker's lock, as a worker of a killed supervisor would; killed at the end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def hold(directory: Path, worker: str, holders: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(directory), worker], stdout=subprocess.PIPE, text=True
    )
    holders.append(process)
    assert process.stdout is not None and process.stdout.readline() == "holding\n"
    return process


def test_a_worker_still_holding_its_lock_is_killed_and_waited_for(
    tmp_path: Path, holders: list[subprocess.Popen[str]], caplog: pytest.LogCaptureFixture
) -> None:
    """reap() kills the holder of each worker lock, waits until the lock is free and says so in the log."""
    leftover = hold(tmp_path, "sink:siem", holders)
    with caplog.at_level(logging.WARNING, "auditship.supervisor"):
        assert orphans.reap(tmp_path, timeout_s=10) == [leftover.pid]
    assert leftover.wait(10) == -9
    assert f"a worker of an earlier agent (pid {leftover.pid}) still runs; killing it" in caplog.text
    os.close(orphans.claim(tmp_path, "sink:siem"))  # free for the new worker


def test_free_locks_are_left_alone_whatever_pid_they_name(tmp_path: Path) -> None:
    """A lock file left by a dead worker names a pid that may now be anyone's (here: this test's): it is
    not killed, since nobody holds the lock."""
    (tmp_path / orphans.lock_name("sink:file")).write_text(f"{os.getpid()}\n")
    assert orphans.reap(tmp_path, timeout_s=1) == []


@pytest.mark.parametrize("named", ["a bystander", "the reaper itself"])
def test_a_pid_in_the_file_that_does_not_hold_the_lock_is_never_killed(
    tmp_path: Path, holders: list[subprocess.Popen[str]], named: str
) -> None:
    """The holder took the lock but the file names another process (a stale pid, now a bystander's or
    the new supervisor's own): reap() kills only another process that has the lock file open, so it gives
    up with an error naming the file instead."""
    leftover = hold(tmp_path, "intake", holders)
    bystander = subprocess.Popen(["sleep", "60"], text=True)
    holders.append(bystander)
    pid = bystander.pid if named == "a bystander" else os.getpid()
    (tmp_path / orphans.lock_name("intake")).write_text(f"{pid}\n")
    with pytest.raises(orphans.LeftoverWorker, match=r"intake\.lock: held by pid"):
        orphans.reap(tmp_path, timeout_s=0.3)
    assert leftover.poll() is None and bystander.poll() is None


def test_a_worker_cannot_claim_a_lock_another_process_holds(
    tmp_path: Path, holders: list[subprocess.Popen[str]]
) -> None:
    """Two workers of one name never run at once: the second names the first."""
    leftover = hold(tmp_path, "sink:file", holders)
    with pytest.raises(orphans.LeftoverWorker, match=f"worker sink:file \\(pid {leftover.pid}\\)"):
        orphans.claim(tmp_path, "sink:file")


def test_a_worker_whose_supervisor_is_already_gone_exits_at_once() -> None:
    """The parent died before the parent-death signal was asked for: the worker sees that its parent is
    not the supervisor that started it, and exits 1 with a line saying so."""
    result = subprocess.run(
        [sys.executable, "-c", "from auditship.agents.supervisor import orphans; orphans.die_with_parent(1)"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "supervisor 1 is gone before this worker" in result.stderr


GRANDCHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
print(child.pid, flush=True)
time.sleep(120)
"""
WORKER = """
import os, time
from auditship.agents.supervisor import orphans
orphans.die_with_parent(os.getppid())
print("ready", flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_worker_is_killed_by_the_kernel_when_its_supervisor_is_sigkilled() -> None:
    """No loop needs to notice: the kernel sends SIGKILL to the worker when its parent dies."""
    with subprocess.Popen(
        [sys.executable, "-c", GRANDCHILD, WORKER], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert parent.stdout.readline() == "ready\n"  # the worker shares the pipe: the signal is asked for
        parent.kill()
    wait_for(lambda: gone(worker), 10, f"worker {worker} to die with its parent")


def gone(pid: int) -> bool:
    """No such process, or only its zombie (its new parent may never reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
