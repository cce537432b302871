"""Telling the sink workers that the WAL grew, so that an idle sink sleeps instead of polling.

The intake publishes an empty message on `wal.sock` (a PUB socket in the runtime directory) after each
pass of its loop that appended anything; every sink worker subscribes and waits on it beside its
mailbox. A missed message costs only latency: a sink also looks at the WAL every IDLE_LOOK_S, and
whenever it has a batch pending it wakes at its flush deadline anyway. So an agent with nothing to do
wakes about once a second per process, not fifty times.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import zmq

SOCKET_NAME = "wal.sock"
IDLE_LOOK_S = 1.0
"""How long an idle sink sleeps without news before it looks at the WAL itself."""


def endpoint(runtime: Path) -> str:
    return f"ipc://{runtime / SOCKET_NAME}"


class GrowthAnnouncer:
    """The intake's side."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], runtime: Path) -> None:
        self.socket = context.socket(zmq.PUB)
        self.socket.setsockopt(zmq.SNDHWM, 16)  # news, not data: a sink that lags reads the WAL anyway
        self.socket.bind(endpoint(runtime))

    def grew(self) -> None:
        # Again: PUB drops rather than blocks; nothing is lost but a wake-up.
        with contextlib.suppress(zmq.Again):
            self.socket.send(b"", zmq.NOBLOCK)

    def close(self) -> None:
        self.socket.close(linger=0)


class GrowthListener:
    """A sink worker's side."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], runtime: Path) -> None:
        self.socket = context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.setsockopt(zmq.RCVHWM, 16)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint(runtime))

    def drain(self) -> bool:
        """Take every message waiting; whether there was one."""
        heard = False
        while True:
            try:
                self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return heard
            heard = True

    def close(self) -> None:
        self.socket.close()
