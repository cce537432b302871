"""A pipe that signals write to (signal.set_wakeup_fd), so that a process sleeping in a poll wakes when
one arrives: the supervisor learns of a worker's exit (SIGCHLD) at once instead of at its next tick."""

from __future__ import annotations

import contextlib
import os
import signal


class WakeUpPipe:
    """The read end is `fd`, for a poller; Python writes the number of each signal it has a handler
    for to the write end. Only the main thread may make one (a limit of set_wakeup_fd)."""

    def __init__(self) -> None:
        self.fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # A full pipe already says "wake up": a signal more need not warn.
        self._previous = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 4096):
                pass

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous)
        os.close(self.fd)
        os.close(self._write_fd)
