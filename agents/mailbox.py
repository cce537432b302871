"""A worker's line to the supervisor: one DEALER socket, named after the worker."""

from __future__ import annotations

import contextlib
import os
import time

import zmq

from auditship.agents import messages
from auditship.agents.messages import Hello, Stats
from shipper.control import Message


class Mailbox:
    def __init__(
        self, context: zmq.Context[zmq.Socket[bytes]], endpoint: str, worker: str, supervisor: int
    ) -> None:
        """`supervisor`: its pid, as it passed it (the parent this process has now may be another
        already, if the supervisor died early)."""
        self.worker = worker
        self.context = context
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.IDENTITY, worker.encode())
        self.socket.setsockopt(zmq.LINGER, 1000)
        self.socket.connect(endpoint)
        self._parent = supervisor
        self._next_stats = 0.0
        self._last_sent: tuple[dict[str, int | float], str | None] | None = None

    def ready(self) -> None:
        """Tell the supervisor the worker is serving (its sockets bound, its sink open)."""
        self.send(Hello(self.worker, os.getpid()))

    def send(self, message: Message) -> None:
        self.socket.send(messages.encoder.encode(message), zmq.NOBLOCK)

    def receive(self) -> Message | None:
        """The next message if one is waiting; never blocks."""
        try:
            return messages.decoder.decode(self.socket.recv(zmq.NOBLOCK))
        except zmq.Again:
            return None

    def report(
        self,
        counters: dict[str, int | float],
        interval_s: float,
        *,
        force: bool = False,
        problem: str | None = None,
    ) -> None:
        """Send counters, and what keeps failing if anything, to the supervisor at most every `interval_s`,
        and only when they changed since the last that went out: an idle worker then wakes nobody."""
        now = time.monotonic()
        if force or now >= self._next_stats:
            self._next_stats = now + interval_s
            if not force and (counters, problem) == self._last_sent:
                return
            with contextlib.suppress(zmq.Again):
                self.send(Stats(self.worker, counters, problem))
                self._last_sent = (counters, problem)

    def orphaned(self) -> bool:
        """True once the supervisor is gone (SIGKILLed); a worker must not outlive it."""
        return os.getppid() != self._parent

    def close(self) -> None:
        self.socket.close()
