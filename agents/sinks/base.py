"""What every sink is: a config section, a class with `open()`, `write_batch()` and `close()`, and a
`build()` that makes the two into what its worker runs.

The sink runner (agents/sinks/runner.py) owns the guarantees: it reads the sink's WAL cursor, calls
`write_batch`, commits the cursor only when the batch is DELIVERED, backs off on ERRORED and sends
REJECTED batches (or the Refused part of one) to dead letters; after a Partial batch it commits before
the entries the sink left and offers them again in the next batch. A sink never commits, counts or
sleeps itself.
An exception from `write_batch` is taken as an event the sink cannot write (the runner finds it by halving
the batch and dead-letters it), except a SinkError, which ends the worker: the sink cannot go on at all.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Protocol, Self

import msgspec

from auditship.agents.section import Section
from shipper.event import AuditEvent
from shipper.seed import SeedSettings


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


class Partial(msgspec.Struct):
    """The sink settled the batch's first `taken` entries (at least one: the destination has them, but
    for those in `refused`, which it refused for good) and left the rest, unwritten, for the next batch:
    a cap on what one batch may do (the parquet sink's `max_partitions`). The runner commits the cursor
    before the first entry left, counts the rest as `deferred` and reads them again at once."""

    taken: int
    refused: Refused

    def __post_init__(self) -> None:
        # A share of nothing would offer the same batch for ever.
        if self.taken < 1:
            raise ValueError(f"Partial: taken must be at least 1, got {self.taken}")


class Sink(Protocol):
    """Everything the runner reads of a sink. A sink class subclasses it, and so has the defaults of what
    only some sinks tell: no Retry-After, no partial progress, no counters of its own."""

    name: str
    retry_after_s: float = 0.0
    """After an ERRORED batch: how long its destination asked not to be called (HTTP Retry-After); the
    runner then waits at least that long."""
    progressed: bool = False
    """The ERRORED attempt settled part of the batch (a sink that sends only the rest at the retry); the
    runner then starts its backoff afresh."""

    @property
    def counters(self) -> dict[str, int]:
        """Its own counters, which the runner reports beside its own (the parquet sink's
        `quarantined_parts`)."""
        return {}

    def open(self) -> None: ...

    def write_batch(self, batch: list[Entry]) -> Delivery | Refused | Partial: ...

    def tick(self) -> None:
        """Called while the runner waits for events, at least once a second: for work due by time rather
        than by batch (the file and parquet sinks' digests). Must return quickly."""
        return

    def close(self) -> None: ...


class BuiltSink(NamedTuple):
    """What a sink's `build(config)` returns: the sink, and how its runner batches for it."""

    sink: Sink
    batch_size: int
    """The most events the runner offers in one `write_batch` (and commits at once)."""
    flush_interval_s: float
    """How long the runner waits for a fuller batch."""


class SinkConfig(Section):
    """What every sink's config section (`[sinks.<name>]`, beside its sink) can do besides its keys:
    configure itself from a service's seed settings when that service starts an embedded agent."""

    @classmethod
    def from_seed(cls, seed: SeedSettings) -> Self:
        """The section an embedded agent runs with; by default, the seed has nothing for it."""
        return cls()
