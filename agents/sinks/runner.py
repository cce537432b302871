"""The sink worker's loop, which owns the delivery guarantees so that no sink can forget them.

Read from the sink's WAL cursor until a batch is full (`batch_size`) or its first record has waited
`flush_interval_s` → `write_batch` → on DELIVERED commit the cursor; on ERRORED rewind and retry after
a backoff (forever: the WAL bound, not a retry count, decides what happens to an endless backlog); on
REJECTED, or for the Refused part of a batch, write dead letters, then commit; on Partial (a sink
capping what one batch may do) commit before the entries it left, which are read again and offered at
once, without waiting for the next flush. Counters (RunnerCounters,
and the sink's own), lag included, go to the supervisor, during backoffs too. With nothing to read it
sleeps until the intake says the WAL grew (wal/growth.py), or IDLE_LOOK_S at most; with a batch begun it
sleeps until the batch's deadline and then reads the rest at once, deaf to the news meanwhile.

Nothing one event does stops the loop: a record that does not decode is counted and skipped, and an
event the sink raises on (one it cannot format) is found by halving the batch and dead-lettered with the
exception as its reason. Only a SinkError, the sink saying that it cannot go on at all, ends the worker
(the supervisor restarts it).

A drain (Stop with `drain`) delivers what the WAL holds at the destination's pace: backoffs and
Retry-After hold, and the supervisor's plain Stop at `supervisor.drain_timeout_s` ends it, the cursor
left before what was not delivered.
"""

from __future__ import annotations

import gc
import importlib
import logging
import time
from datetime import UTC, datetime

import msgspec

from auditship.agents.backoff import Backoff
from auditship.agents.config import AgentConfig
from auditship.agents.errors import SinkError
from auditship.agents.mailbox import Mailbox
from auditship.agents.sinks.base import BuiltSink, Delivery, Entry, Partial, Refused, Sink
from auditship.agents.sinks.registry import SINKS
from auditship.agents.wal import WalReader, WalRecord
from auditship.agents.wal.growth import IDLE_LOOK_S, GrowthListener
from auditship.agents.wal_worker import WalWorker
from auditship.ondisk.data_layout import DataLayout
from shipper.wire import checked_frame_decoder

log = logging.getLogger("auditship.sinks")
MAX_BATCH_BYTES = 8 * 1024 * 1024
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 30.0
REFUSED_WHOLE = "the destination refused the batch"
YOUNG_COLLECTION_ALLOCATIONS = 50_000
"""A sink worker's garbage collector looks at its youngest objects after this many allocations, not
CPython's 700: a batch allocates about 8 tracked objects an event (events, their dicts, entries) that all
live until the batch is written, so at 700 each of them was traversed by several collections. Callgrind,
per event: the file sink (batches of 1,000) 47.3k instructions at 700, 41.4k at 10,000; the lake's
decoding and row encoding (batches of up to 10,000) 29.8k at 700, 25.4k at 50,000. Only objects in
reference cycles wait for the collector, and a sink makes next to none."""


class DeadLetter(msgspec.Struct):
    """One line of deadletters/<sink>.jsonl: what `audit-agent redeliver` sends again."""

    seq: int
    event: msgspec.Raw
    reason: str
    time: datetime


def dead_letter_lines(refused: Refused) -> list[bytes]:
    """The dead-letter file's lines for what a destination refused, each with its reason."""
    now = datetime.now(UTC)
    return [
        msgspec.json.encode(
            DeadLetter(
                entry.lsn, msgspec.Raw(msgspec.json.encode(entry.event, enc_hook=_stand_in)), reason, now
            )
        )
        for entry, reason in zip(refused.entries, refused.reasons, strict=True)
    ]


def _stand_in(value: object) -> object:
    """What JSON cannot hold (a msgpack extension value in `details`), so that an event a sink could not
    write for that reason can still be dead-lettered."""
    if isinstance(value, msgspec.msgpack.Ext):
        return {"msgpack_ext": value.code, "data": value.data}
    return repr(value)


class RunnerCounters(msgspec.Struct):
    """What the runner counts, reported (with the sink's own counters after them) to the supervisor."""

    delivered: int = 0
    """Events the destination has (refused ones not included)."""
    batches: int = 0
    """Batches settled: delivered, dead-lettered, or part of each."""
    retries: int = 0
    """ERRORED attempts, each retried after a backoff."""
    dead_lettered: int = 0
    undecodable: int = 0
    """WAL records that did not decode: skipped."""
    unwritable: int = 0
    """Events the sink raised on: dead-lettered with the exception."""
    deferred: int = 0
    """Events a sink left for the next batch (Partial: the parquet sink's `max_partitions`), each then
    offered again; an event deferred twice counts twice."""
    lag_s: float = 0.0
    """The age of the oldest event read and not delivered, as of the report: the earliest timestamp
    among them, which need not be the first one's (emitters' clocks differ, spools arrive late)."""
    committed: int = 0
    """The sink's WAL cursor."""


def age_s(moment: datetime, now: datetime) -> float:
    """Seconds from `moment` to `now`, never below 0 (an emitter's clock may run ahead). A naive `moment`
    is taken as UTC, as the intake takes it. Aware datetimes subtract without overflow whatever their
    year and offset, so an odd timestamp already in the WAL cannot stop a sink here."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (now - moment).total_seconds())


def build_sink(name: str, config: AgentConfig) -> BuiltSink:
    """The sink called `name`, with how its runner batches for it. Its module is imported here, by the
    worker (or command) that uses it only."""
    if name not in SINKS:
        raise ValueError(f"unknown sink {name!r}; the sinks are {', '.join(SINKS)}")
    built: BuiltSink = importlib.import_module(f"auditship.agents.sinks.{name}.sink").build(config)
    return built


def build_runner(name: str, config: AgentConfig, mailbox: Mailbox) -> SinkRunner:
    """The runner of the sink called `name`, as its worker runs it: the worker's process is the
    runner's alone, so its garbage collector is tuned for batches here."""
    gc.set_threshold(YOUNG_COLLECTION_ALLOCATIONS, *gc.get_threshold()[1:])
    sink, batch_size, flush_interval_s = build_sink(name, config)
    return SinkRunner(sink, config, mailbox, batch_size, flush_interval_s)


class SinkRunner(WalWorker):
    def __init__(
        self,
        sink: Sink,
        config: AgentConfig,
        mailbox: Mailbox,
        batch_size: int,
        flush_interval_s: float = 0.0,
    ) -> None:
        self.sink = sink
        self.config = config
        self.mailbox = mailbox
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.layout = DataLayout(config.data_path)
        self.reader = WalReader(self.layout.wal, sink.name)
        self.growth = GrowthListener(mailbox.context, config.runtime_path)
        self.counters = RunnerCounters(committed=self.reader.committed)
        self._backoff = Backoff(BACKOFF_BASE_S, BACKOFF_CAP_S)
        self._draining = False
        self._stopping = False
        self._pending: list[WalRecord] = []
        self._decoded: list[Entry] = []
        """The events of `_pending`, decoded as they are read (those that decode)."""
        self._flush_at = 0.0
        self._resume = False
        """The last batch was Partial: the next one goes out as soon as it is read."""
        self._oldest: datetime | None = None
        """The earliest timestamp of the events read and not yet delivered, in UTC (kept while their
        batch is retried)."""
        self._problem: str | None = None

    def run(self) -> None:
        self.sink.open()
        self.mailbox.ready()
        log.info("sink %s starts after WAL seq %d", self.sink.name, self.reader.committed)
        try:
            while not self._stopping and not self.mailbox.orphaned():
                self._step()
                self._report()
        finally:
            self.sink.close()
            self.reader.close()
            self.growth.close()
            self._report(force=True)
        if self.mailbox.orphaned():
            log.error("sink %s: the supervisor is gone; stopping", self.sink.name)
        if self._oldest is not None:
            log.warning(
                "sink %s stopped at WAL seq %d with events after it not delivered; they stay in the WAL "
                "and go out after the next start",
                self.sink.name,
                self.reader.committed,
            )
        else:
            log.info("sink %s stopped at WAL seq %d", self.sink.name, self.reader.committed)

    def _report(self, *, force: bool = False) -> None:
        """Counters to the supervisor (at most every stats_interval_s), lag_s as of now."""
        oldest = self._oldest
        self.counters.lag_s = age_s(oldest, datetime.now(UTC)) if oldest is not None else 0.0
        counters: dict[str, int | float] = {**msgspec.structs.asdict(self.counters), **self.sink.counters}
        interval = self.config.supervisor.stats_interval_s
        self.mailbox.report(counters, interval, force=force, problem=self._problem)

    def _step(self) -> None:
        now = time.monotonic()
        more = self.reader.read(self.batch_size - len(self._pending), MAX_BATCH_BYTES)
        if more:
            if not self._pending:
                self._flush_at = now if self._resume else now + self.flush_interval_s
                self._resume = False
            decoded = self._decode(more)
            self._note_oldest(decoded)
            self._pending.extend(more)
            self._decoded.extend(decoded)
        full = len(self._pending) >= self.batch_size
        if self._pending and (full or now >= self._flush_at or self._draining):
            batch, self._pending = self._pending, []
            entries, self._decoded = self._decoded, []
            self._deliver(batch, entries)
        elif not more:
            if self._draining:
                self._stopping = True
                return
            self.sink.tick()
            if self._pending:
                # The batch fills at its deadline, in one read, rather than a few events per append.
                self._wait(self._flush_at - now)
            else:
                self._wait(IDLE_LOOK_S, until_growth=True)

    def _note_oldest(self, entries: list[Entry]) -> None:
        """Lower `_oldest` to the earliest timestamp among `entries`. Each is aware (a decoded AuditEvent
        takes a naive one as UTC, as the intake does), and aware ones compare without overflow whatever
        their year and offset."""
        if not entries:
            return
        earliest = min([entry.event.timestamp for entry in entries])
        if self._oldest is None or earliest < self._oldest:
            self._oldest = earliest

    def _deliver(self, records: list[WalRecord], entries: list[Entry]) -> None:
        """Offer the events of `records` (`entries`: those that decoded) to the sink and settle them."""
        first, last = records[0].lsn, records[-1].lsn
        outcome = self._write(entries) if entries else Delivery.DELIVERED
        if outcome is Delivery.ERRORED:
            self._retry_later(first, last)
            return
        taken = len(entries)
        if isinstance(outcome, Partial):
            taken, outcome = outcome.taken, outcome.refused
            last = entries[taken].lsn - 1
        if outcome is Delivery.REJECTED:
            outcome = Refused(entries, [REFUSED_WHOLE] * len(entries))
        if isinstance(outcome, Refused):
            self._dead_letter(outcome, first, last)
        self.counters.delivered += taken - (len(outcome.entries) if isinstance(outcome, Refused) else 0)
        self._backoff.succeeded()
        self._problem = None
        self.counters.batches += 1
        self.reader.commit(last)
        self.counters.committed = last
        self._oldest = None
        if taken < len(entries):
            self._defer(entries[taken:])

    def _defer(self, rest: list[Entry]) -> None:
        """The sink left `rest` for the next batch: read it again, and offer it at once."""
        self.counters.deferred += len(rest)
        self.reader.rewind()  # to the commit just made
        self._resume = True
        log.info(
            "sink %s: %d events from WAL seq %d go in the next batch (a cap on what one batch may do)",
            self.sink.name,
            len(rest),
            rest[0].lsn,
        )

    def _write(self, entries: list[Entry]) -> Delivery | Refused | Partial:
        """`write_batch`, but the events the sink raises on come back Refused with the exception as their
        reason, and the rest are written: they are found by halving the batch, so one such event in a
        batch of n costs about 2·log2(n) calls. Parts written before a half fails are written again at
        the retry, as after a crash."""
        try:
            return self.sink.write_batch(entries)
        except SinkError:
            raise
        except Exception as exc:  # noqa: BLE001 - an event the sink cannot format must not stop it
            if len(entries) == 1:
                return self._unwritable(entries[0], exc)
        half = len(entries) // 2
        head = self._write(entries[:half])
        if head is Delivery.ERRORED or isinstance(head, Partial):  # a Partial head leaves the tail too
            return head
        tail = self._write(entries[half:])
        if tail is Delivery.ERRORED:
            return tail
        refused = [
            _refusals(part, outcome) for part, outcome in ((entries[:half], head), (entries[half:], tail))
        ]
        both = Refused(refused[0].entries + refused[1].entries, refused[0].reasons + refused[1].reasons)
        if isinstance(tail, Partial):
            return Partial(half + tail.taken, both)
        return both if both.entries else Delivery.DELIVERED

    def _unwritable(self, entry: Entry, exc: Exception) -> Refused:
        self.counters.unwritable += 1
        log.error(
            "sink %s cannot write the event of WAL seq %d (%s: %s); it goes to dead letters",
            self.sink.name,
            entry.lsn,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        return Refused([entry], [f"the {self.sink.name} sink cannot write it: {type(exc).__name__}: {exc}"])

    def _retry_later(self, first: int, last: int) -> None:
        self.counters.retries += 1
        # A destination that said when to come back (HTTP Retry-After) is not asked again sooner.
        delay = self._backoff.failed(progressed=self.sink.progressed, retry_after_s=self.sink.retry_after_s)
        self._problem = f"batch {first}-{last} not delivered (attempt {self._backoff.attempt})"
        log.warning(
            "sink %s: batch %d-%d not delivered (attempt %d); it stays in the WAL, retrying in %.1fs",
            self.sink.name,
            first,
            last,
            self._backoff.attempt,
            delay,
        )
        self.reader.rewind()
        self._wait(delay)

    def _decode(self, records: list[WalRecord]) -> list[Entry]:
        entries: list[Entry] = []
        # The intake matched every stored frame's emitter id: a CheckedFrame does not again (an eighth of the
        # file sink's CPU per event).
        append, decode = entries.append, checked_frame_decoder.decode  # the hot loop: locals only
        for record in records:
            try:
                append(Entry(record.lsn, decode(record.payload).event))
            except Exception as exc:  # noqa: BLE001 - whatever one record holds, it must not stop the sink
                # The intake validated it; this is a bug or damage on disk, worth seeing, not stopping for.
                self.counters.undecodable += 1
                log.error("sink %s: WAL record %d undecodable (%s); skipped", self.sink.name, record.lsn, exc)
        return entries

    def _dead_letter(self, refused: Refused, first: int, last: int) -> None:
        directory = self.layout.deadletters
        directory.mkdir(mode=0o700, exist_ok=True)
        path = directory / f"{self.sink.name}.jsonl"
        lines = dead_letter_lines(refused)
        with path.open("ab") as file:
            file.write(b"\n".join(lines) + b"\n")
        path.chmod(0o600)
        self.counters.dead_lettered += len(lines)
        log.error(
            "sink %s refused %d events of batch %d-%d for good; written to %s (first reason: %s)",
            self.sink.name,
            len(lines),
            first,
            last,
            path,
            refused.reasons[0] if refused.reasons else "?",
        )


def _refusals(entries: list[Entry], outcome: Delivery | Refused | Partial) -> Refused:
    """What of `entries` a write refused: all of them for REJECTED, none for DELIVERED."""
    if isinstance(outcome, Refused):
        return outcome
    if isinstance(outcome, Partial):
        return outcome.refused
    return (
        Refused(entries, [REFUSED_WHOLE] * len(entries)) if outcome is Delivery.REJECTED else Refused([], [])
    )
