"""The supervisor's wake-up pipe: a worker's exit (SIGCHLD) makes it readable, so the poll ends at once."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from auditship.agents.supervisor.wake_up import WakeUpPipe


@pytest.fixture
def pipe() -> Iterator[WakeUpPipe]:
    previous = signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    wake_up = WakeUpPipe()
    yield wake_up
    wake_up.close()
    signal.signal(signal.SIGCHLD, previous)


def _readable(fd: int, timeout_s: float) -> bool:
    return bool(select.select([fd], [], [], timeout_s)[0])


def test_a_child_exit_makes_the_pipe_readable_and_drain_empties_it(pipe: WakeUpPipe) -> None:
    assert not _readable(pipe.fd, 0)
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert _readable(pipe.fd, 10), "no wake-up after a child exited"
    pipe.drain()
    assert not _readable(pipe.fd, 0)


def test_close_gives_the_wakeup_fd_back(pipe: WakeUpPipe) -> None:
    other = WakeUpPipe()
    other.close()
    # The first pipe's write end is the wake-up fd again: a child's exit still reaches it.
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert _readable(pipe.fd, 10)
