"""Messages between the supervisor and its workers, as tagged Structs.

All travel over the supervisor's ROUTER socket (`control.sock` in the runtime directory): workers
connect a DEALER whose identity is their name. A client's status request and its reply, which a
service sends too, are shipper.control's.
"""

from __future__ import annotations

import msgspec

from shipper.control import Message, Status, StatusRequest


class Hello(Message):
    """A worker says it is serving (sockets bound, sink open); until then the supervisor shows it STARTING."""

    worker: str
    pid: int


class Stop(Message):
    """Stop the worker. With `drain`, a sink first delivers everything the WAL holds."""

    drain: bool = False


class Stats(Message):
    """A worker's counters, sent every `supervisor.stats_interval_s`, and the supervisor's reply
    to a `StatusRequest` is made of them."""

    worker: str
    counters: dict[str, int | float]
    problem: str | None = None
    """What keeps failing right now, in a sentence (a full disk under the WAL), for status to show."""


class Failed(Message):
    reason: str


AnyMessage = Hello | Stop | Stats | StatusRequest | Status | Failed
encoder = msgspec.msgpack.Encoder()
decoder: msgspec.msgpack.Decoder[AnyMessage] = msgspec.msgpack.Decoder(AnyMessage)
