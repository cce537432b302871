"""The sink worker's loop, which owns the delivery guarantees so that no sink can forget them.

Read a batch from the sink's WAL cursor → `write_batch` → on DELIVERED commit the cursor; on ERRORED
rewind and retry after a backoff (forever: the WAL bound, not a retry count, decides what happens to an
endless backlog); on REJECTED write the batch to dead letters, then commit. Counters go to the supervisor.
"""

from __future__ import annotations

import logging
import time

import msgspec

from agents.backoff import compute_backoff
from agents.config import AgentConfig
from agents.layout import DataLayout
from agents.mailbox import Mailbox
from agents.messages import Stop
from agents.sinks.base import Delivery, Entry, Sink
from agents.wal import WalReader, WalRecord
from shipper.wire import frame_decoder

log = logging.getLogger("auditship.sinks")
IDLE_POLL_MS = 20
MAX_BATCH_BYTES = 8 * 1024 * 1024
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 30.0


class SinkRunner:
    def __init__(self, sink: Sink, config: AgentConfig, mailbox: Mailbox, batch_size: int) -> None:
        self.sink = sink
        self.config = config
        self.mailbox = mailbox
        self.batch_size = batch_size
        self.layout = DataLayout(config.data_path)
        self.reader = WalReader(self.layout.wal, sink.name)
        self.counters: dict[str, int | float] = dict.fromkeys(
            ("delivered", "batches", "errors", "rejected", "undecodable", "committed"), 0
        )
        self.counters["committed"] = self.reader.committed
        self._attempt = 0
        self._draining = False
        self._stopping = False

    def run(self) -> None:
        self.sink.open()
        self.mailbox.ready()
        log.info("sink %s starts after WAL seq %d", self.sink.name, self.reader.committed)
        try:
            while not self._stopping and not self.mailbox.orphaned():
                records = self.reader.read(self.batch_size, MAX_BATCH_BYTES)
                if records:
                    self._deliver(records)
                elif self._draining:
                    break
                else:
                    self._wait(IDLE_POLL_MS / 1000)
                self.mailbox.report(self.counters, self.config.supervisor.stats_interval_s)
        finally:
            self.sink.close()
            self.reader.close()
            self.mailbox.report(self.counters, 0, force=True)
        log.info("sink %s stopped at WAL seq %d", self.sink.name, self.reader.committed)

    def _deliver(self, records: list[WalRecord]) -> None:
        entries = self._decode(records)
        first, last = records[0].seq, records[-1].seq
        outcome = self.sink.write_batch(entries) if entries else Delivery.DELIVERED
        if outcome is Delivery.ERRORED:
            self.counters["errors"] += 1
            self._attempt += 1
            delay = compute_backoff(self._attempt, BACKOFF_BASE_S, BACKOFF_CAP_S)
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
            return
        if outcome is Delivery.REJECTED:
            self.counters["rejected"] += len(entries)
            self._dead_letter(entries, first, last)
        else:
            self.counters["delivered"] += len(entries)
        self._attempt = 0
        self.counters["batches"] += 1
        self.reader.commit(last)
        self.counters["committed"] = last

    def _decode(self, records: list[WalRecord]) -> list[Entry]:
        entries = []
        for record in records:
            try:
                entries.append(Entry(record.seq, frame_decoder.decode(record.payload).event))
            except msgspec.DecodeError as exc:
                # The intake validated it; this is a bug or damage on disk, worth seeing, not stopping for.
                self.counters["undecodable"] += 1
                log.error(
                    "sink %s: WAL record %d cannot be decoded (%s); skipped", self.sink.name, record.seq, exc
                )
        return entries

    def _dead_letter(self, entries: list[Entry], first: int, last: int) -> None:
        directory = self.layout.root / "deadletters"
        directory.mkdir(mode=0o700, exist_ok=True)
        path = directory / f"{self.sink.name}.jsonl"
        with path.open("ab") as file:
            for entry in entries:
                file.write(msgspec.json.encode(entry) + b"\n")
        path.chmod(0o600)
        log.error(
            "sink %s refused batch %d-%d for good: %d events written to %s",
            self.sink.name,
            first,
            last,
            len(entries),
            path,
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
