"""The sink worker's loop, which owns the delivery guarantees so that no sink can forget them.

Read from the sink's WAL cursor until a batch is full (`batch_size`) or its first record has waited
`flush_interval_s` → `write_batch` → on DELIVERED commit the cursor; on ERRORED rewind and retry after
a backoff (forever: the WAL bound, not a retry count, decides what happens to an endless backlog); on
REJECTED, or for the Refused part of a batch, write dead letters, then commit. Counters, lag included,
go to the supervisor.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import msgspec

from agents.backoff import compute_backoff
from agents.config import AgentConfig
from agents.layout import DataLayout
from agents.mailbox import Mailbox
from agents.messages import Stop
from agents.sinks.base import Delivery, Entry, Refused, Sink
from agents.wal import WalReader, WalRecord
from shipper.wire import frame_decoder

log = logging.getLogger("auditship.sinks")
IDLE_POLL_MS = 20
MAX_BATCH_BYTES = 8 * 1024 * 1024
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 30.0


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
        msgspec.json.encode(DeadLetter(entry.seq, msgspec.Raw(msgspec.json.encode(entry.event)), reason, now))
        for entry, reason in zip(refused.entries, refused.reasons, strict=True)
    ]


class SinkRunner:
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
        self.counters: dict[str, int | float] = dict.fromkeys(
            ("delivered", "batches", "retries", "dead_lettered", "undecodable", "lag_s"), 0
        )
        self.counters["committed"] = self.reader.committed
        self._attempt = 0
        self._draining = False
        self._stopping = False
        self._pending: list[WalRecord] = []
        self._flush_at = 0.0

    def run(self) -> None:
        self.sink.open()
        self.mailbox.ready()
        log.info("sink %s starts after WAL seq %d", self.sink.name, self.reader.committed)
        try:
            while not self._stopping and not self.mailbox.orphaned():
                self._step()
                self.mailbox.report(self.counters, self.config.supervisor.stats_interval_s)
        finally:
            self.sink.close()
            self.reader.close()
            self.mailbox.report(self.counters, 0, force=True)
        log.info("sink %s stopped at WAL seq %d", self.sink.name, self.reader.committed)

    def _step(self) -> None:
        now = time.monotonic()
        more = self.reader.read(self.batch_size - len(self._pending), MAX_BATCH_BYTES)
        if more:
            if not self._pending:
                self._flush_at = now + self.flush_interval_s
            self._pending.extend(more)
        full = len(self._pending) >= self.batch_size
        if self._pending and (full or now >= self._flush_at or self._draining):
            batch, self._pending = self._pending, []
            self._deliver(batch)
        elif not more:
            if self._draining:
                self._stopping = True
                return
            self.counters["lag_s"] = self._lag_s()
            wait = IDLE_POLL_MS / 1000
            self._wait(min(wait, self._flush_at - now) if self._pending else wait)

    def _lag_s(self) -> float:
        """How old the oldest event not yet delivered is; 0 when caught up."""
        if not self._pending:
            return 0.0
        entries = self._decode(self._pending[:1])
        return (datetime.now(UTC) - entries[0].event.timestamp).total_seconds() if entries else 0.0

    def _deliver(self, records: list[WalRecord]) -> None:
        entries = self._decode(records)
        first, last = records[0].seq, records[-1].seq
        outcome = self.sink.write_batch(entries) if entries else Delivery.DELIVERED
        if outcome is Delivery.ERRORED:
            self._retry_later(records, entries, first, last)
            return
        if outcome is Delivery.REJECTED:
            outcome = Refused(entries, ["the destination refused the batch"] * len(entries))
        if isinstance(outcome, Refused):
            self._dead_letter(outcome, first, last)
        self.counters["delivered"] += len(entries) - (
            len(outcome.entries) if isinstance(outcome, Refused) else 0
        )
        self._attempt = 0
        self.counters["batches"] += 1
        self.counters["lag_s"] = 0.0
        self.reader.commit(last)
        self.counters["committed"] = last

    def _retry_later(self, records: list[WalRecord], entries: list[Entry], first: int, last: int) -> None:
        self.counters["retries"] += 1
        self._attempt += 1
        if entries:
            self.counters["lag_s"] = (datetime.now(UTC) - entries[0].event.timestamp).total_seconds()
        delay = compute_backoff(self._attempt, BACKOFF_BASE_S, BACKOFF_CAP_S)
        # A destination that said when to come back (HTTP Retry-After) is not asked again sooner.
        delay = max(delay, getattr(self.sink, "retry_after_s", 0.0))
        log.warning(
            "sink %s: batch %d-%d not delivered (attempt %d); it stays in the WAL, retrying in %.1fs",
            self.sink.name,
            first,
            last,
            self._attempt,
            delay,
        )
        self.reader.rewind()
        self._wait(delay)

    def _decode(self, records: list[WalRecord]) -> list[Entry]:
        entries = []
        for record in records:
            try:
                entries.append(Entry(record.seq, frame_decoder.decode(record.payload).event))
            except msgspec.DecodeError as exc:
                # The intake validated it; this is a bug or damage on disk, worth seeing, not stopping for.
                self.counters["undecodable"] += 1
                log.error("sink %s: WAL record %d undecodable (%s); skipped", self.sink.name, record.seq, exc)
        return entries

    def _dead_letter(self, refused: Refused, first: int, last: int) -> None:
        directory = self.layout.deadletters
        directory.mkdir(mode=0o700, exist_ok=True)
        path = directory / f"{self.sink.name}.jsonl"
        lines = dead_letter_lines(refused)
        with path.open("ab") as file:
            file.write(b"\n".join(lines) + b"\n")
        path.chmod(0o600)
        self.counters["dead_lettered"] += len(lines)
        log.error(
            "sink %s refused %d events of batch %d-%d for good; written to %s (first reason: %s)",
            self.sink.name,
            len(lines),
            first,
            last,
            path,
            refused.reasons[0] if refused.reasons else "?",
        )

    def _wait(self, seconds: float) -> None:
        """Sleep on the mailbox, so a Stop is seen at once."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if not self.mailbox.socket.poll(max(1, int(remaining * 1000))):
                continue
            message = self.mailbox.receive()
            if isinstance(message, Stop):
                self._draining = message.drain
                self._stopping = not message.drain
                return
