"""The emitter's end of the confirmation socket: a DEALER that says hello and reads what the intake confirms.

The intake sends an emitter's confirmations only to connections of the emitter's sender that said hello
with its id (agents/intake/routes.py), so nobody else hears them. A hello is sent when the socket
connects; ZeroMQ queues it until the agent is there. An agent that restarts has forgotten it, and a
hello may be lost with a connection, so a listener whose emitter waits for confirmations that do not
come says hello again (`remind`), at most every HELLO_AGAIN_S.
"""

from __future__ import annotations

import contextlib
import time

import msgspec
import zmq

from shipper.curve import ClientKeys
from shipper.wire import Confirmation, Hello, confirmation_decoder, frame_encoder

HELLO_AGAIN_S = 0.5
"""How long confirmations may be awaited in silence before the listener says hello again."""


class ConfirmationListener:
    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        emitter_id: str,
        curve: ClientKeys | None,
    ) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            curve.apply(self.socket)
        self.socket.connect(endpoint)
        self._hello = frame_encoder.encode(Hello(emitter_id))
        self._said = self._heard = 0.0
        self.say_hello()

    def say_hello(self) -> None:
        # Again: its queue is full of earlier hellos, and one of them is enough.
        with contextlib.suppress(zmq.Again):
            self.socket.send(self._hello, zmq.NOBLOCK)
        self._said = time.monotonic()

    def remind(self, now: float, waiting_since: float) -> None:
        """Say hello again when confirmations have been awaited since `waiting_since`, and nothing was
        heard or said for HELLO_AGAIN_S."""
        if now - max(waiting_since, self._said, self._heard) >= HELLO_AGAIN_S:
            self.say_hello()

    def poll(self, timeout_ms: int) -> bool:
        return bool(self.socket.poll(timeout_ms))

    def received(self) -> list[Confirmation]:
        """Every confirmation waiting, without blocking. A message that is not one is skipped: only
        the agent's intake can be at the other end, but a listener must outlive anything it reads."""
        confirmations: list[Confirmation] = []
        while True:
            try:
                message = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                confirmations.append(confirmation_decoder.decode(message))
            except msgspec.DecodeError:
                continue
        if confirmations:
            self._heard = time.monotonic()
        return confirmations

    def close(self, linger: int = 0) -> None:
        self.socket.close(linger=linger)
