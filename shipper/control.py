"""The agent's control socket as a client sees it: the status request and its reply.

The supervisor answers on `control.sock` in its runtime directory (a ROUTER); a client connects a DEALER
with a random identity. Messages are tagged msgspec Structs in msgpack; the messages between the
supervisor and its workers (agents.messages) are `Message`s too, on the same socket. `audit-agent status`
and a service waiting for the agent it started (shipper.embedded) both ask with `request_status`.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import zmq

from shipper import endpoint


class Message(msgspec.Struct, tag=True, array_like=True):
    pass


class StatusRequest(Message):
    pass


class WorkerStatus(msgspec.Struct):
    name: str
    state: str
    pid: int | None
    restarts: int
    counters: dict[str, int | float]
    problem: str | None = None


class Status(Message):
    pid: int
    workers: list[WorkerStatus]


_status_decoder = msgspec.msgpack.Decoder(Status)


def request_status(runtime: Path, timeout_s: float = 2.0) -> Status | None:
    """The status of the agent whose runtime directory is `runtime`, or None when none answers within the
    timeout (or it answers something else)."""
    with zmq.Context() as context, context.socket(zmq.DEALER) as socket:
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(endpoint.control_endpoint(runtime))
        socket.send(msgspec.msgpack.encode(StatusRequest()))
        if not socket.poll(int(timeout_s * 1000)):
            return None
        reply = socket.recv()
    try:
        return _status_decoder.decode(reply)
    except msgspec.ValidationError:
        return None  # a Failed: not a supervisor that knows the request
