"""What every sink is: a config Struct and a class with `open()`, `write_batch()` and `close()`.

The sink runner (agents/sinks/runner.py) owns the guarantees: it reads the sink's WAL cursor, calls
`write_batch`, commits the cursor only when the batch is DELIVERED, backs off on ERRORED and sends
REJECTED batches (or the Refused part of one) to dead letters. A sink never commits, counts or sleeps itself.
An exception from `write_batch` is taken as an event the sink cannot write (the runner finds it by halving
the batch and dead-letters it), except a SinkError, which ends the worker: the sink cannot go on at all.
"""

from __future__ import annotations

import enum
from typing import Protocol

import msgspec

from shipper.event import AuditEvent


class Delivery(enum.Enum):
    DELIVERED = "delivered"  # the destination has the whole batch; the cursor may move past it
    ERRORED = "errored"  # a transient failure; the same batch is offered again after a backoff
    REJECTED = "rejected"  # the destination refused it for good; it goes to dead letters


class Entry(msgspec.Struct, frozen=True):
    """One WAL record as a sink sees it: its LSN (WAL sequence number) and the event it carries, with
    `sensitive` values already encrypted by the intake."""

    lsn: int
    event: AuditEvent


class Refused(msgspec.Struct):
    """The destination took every entry of the batch but these, which it refused for good (a per-item
    error that retrying cannot fix). The runner dead-letters them with their reasons and moves on."""

    entries: list[Entry]
    reasons: list[str]


class Sink(Protocol):
    """A sink may also have `retry_after_s: float`: after an ERRORED batch, how long its destination
    asked not to be called (HTTP Retry-After); the runner then waits at least that long. And
    `progressed: bool`: the ERRORED attempt settled part of the batch (a sink that sends only the rest
    at the retry); the runner then starts its backoff afresh. And `counters: dict[str, int]`: its own
    counters, which the runner reports beside its own (the parquet sink's `quarantined_parts`)."""

    name: str

    def open(self) -> None: ...

    def write_batch(self, batch: list[Entry]) -> Delivery | Refused: ...

    def close(self) -> None: ...
