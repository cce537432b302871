"""The detect worker: the rules over the WAL, on a cursor of its own (`wal/cursors/detect`), alerts back
through the intake.

The loop: read records after the position → the detector → alerts to the outbox (a spool file the intake
ingests) → every `snapshot_interval_s`, once the outbox is empty: fsync the spool file, save the state
(`data_dir/detect/state`, atomically, with the position it covers), then commit the cursor to that
position. So the cursor never passes an event whose alerts are not durable, and the WAL keeps what a
restart needs: the start loads the state and replays the WAL from the cursor, skipping what the state
already holds; an alert found again is the same frame (alert.py), which the intake drops as a repeat.

What one record does cannot stop the loop (the detector skips what it cannot decode). A spool that
cannot be written holds the loop, retried after a backoff, reading nothing more meanwhile: the WAL,
not memory, holds the backlog. With nothing to read it sleeps until the intake says the WAL grew, or
IDLE_LOOK_S at most, as the sinks do; after a read that did not fill a batch it lingers LINGER_S, so
that a trickle is read in batches, not an append at a time (well inside the 5 s an alert may take).
A drain reads to the end of the WAL, sends, saves and stops.
"""

from __future__ import annotations

import logging
import os
import time

import msgspec

from auditship.agents.backoff import Backoff
from auditship.agents.config import AgentConfig
from auditship.agents.detect.alert import alert_frame
from auditship.agents.detect.engine import Detector
from auditship.agents.detect.observed import DETECT_SERVICE
from auditship.agents.detect.outbox import Outbox
from auditship.agents.durable import write_atomically
from auditship.agents.intake.senders import Identities
from auditship.agents.mailbox import Mailbox
from auditship.agents.sinks.runner import BACKOFF_BASE_S, BACKOFF_CAP_S
from auditship.agents.wal import WalReader
from auditship.agents.wal.growth import IDLE_LOOK_S, GrowthListener
from auditship.agents.wal_worker import WalWorker
from auditship.ondisk.data_layout import DataLayout
from auditship.ondisk.files import make_private_dirs
from shipper.event import Sender

log = logging.getLogger("auditship.detect")
CURSOR = "detect"
STATE_NAME = "state"
MAX_BATCH_BYTES = 8 * 1024 * 1024
REFRESH_S = 5.0
"""How often the deny list's file is looked at for a change."""
LINGER_S = 0.1
"""How long the detector lets a trickle gather after a read that did not fill a batch."""


class DetectCounters(msgspec.Struct):
    observed: int = 0
    own: int = 0
    undecodable: int = 0
    alerts: int = 0
    """Alerts written to the spool."""
    pending: int = 0
    """Alerts waiting for the spool to take them."""
    keys: int = 0
    """Keys the rules hold state for (at most detect.max_keys each)."""
    evicted: int = 0
    """Keys forgotten to stay within detect.max_keys."""
    snapshots: int = 0
    committed: int = 0
    """The last WAL seq examined (the cursor file follows at each snapshot)."""


class DetectWorker(WalWorker):
    def __init__(self, config: AgentConfig, mailbox: Mailbox) -> None:
        self.config = config
        self.settings = config.detect
        self.mailbox = mailbox
        self.layout = DataLayout(config.data_path)
        self.state_path = self.layout.detect / STATE_NAME
        self.detector = Detector(config.detect)
        self.reader = WalReader(self.layout.wal, CURSOR)
        self.growth = GrowthListener(mailbox.context, config.runtime_path)
        self.outbox = Outbox(config.spool_path)
        self.counters = DetectCounters()
        self._backoff = Backoff(BACKOFF_BASE_S, BACKOFF_CAP_S)
        self._draining = False
        self._stopping = False
        self._problem: str | None = None
        self._next_snapshot = 0.0
        self._next_refresh = 0.0

    def run(self) -> None:
        self._check_identity()
        self._restore()
        self.mailbox.ready()
        log.info("detect: %d rules, from WAL seq %d", len(self.detector.rules), self.detector.position)
        try:
            while not self._stopping and not self.mailbox.orphaned():
                self._step()
                self._report()
            if self._flush():
                self._save()
        finally:
            self.outbox.close()
            self.reader.close()
            self.growth.close()
            self._report(force=True)
        log.info("detect stopped at WAL seq %d", self.detector.position)

    def _check_identity(self) -> None:
        """Say so when `[intake.identities]` keeps the agent's own user from sending as DETECT_SERVICE:
        its alerts, which reach the intake through the spool as that user's, would be refused."""
        settings = self.config.intake
        identities = Identities(settings.allowed_services(), flag=settings.identity_mismatch == "flag")
        refusal = identities.refusal(Sender(uid=os.geteuid()), DETECT_SERVICE)
        if refusal is not None:
            outcome = "kept, flagged as a mismatch" if identities.flag else "refused to rejects/"
            log.error(
                "detect: its alerts will be %s: %s; add the agent's user with %r to intake.identities",
                outcome,
                refusal,
                DETECT_SERVICE,
            )

    def _restore(self) -> None:
        try:
            data = self.state_path.read_bytes()
        except FileNotFoundError:
            data = None
        if data is not None:
            self.detector.restore(data, str(self.state_path))
        cursor = self.reader.committed
        if self.detector.position < cursor:
            log.warning(
                "detect: the saved state covers WAL seq %d, the cursor is at %d; the rules miss what was "
                "between",
                self.detector.position,
                cursor,
            )
            self.detector.position = cursor
        self.counters.committed = self.detector.position
        self._next_snapshot = time.monotonic() + self.settings.snapshot_interval_s

    def _step(self) -> None:
        now = time.monotonic()
        if now >= self._next_refresh:
            self._next_refresh = now + REFRESH_S
            self.detector.refresh()
        if self.outbox.pending and not self._flush():
            return
        records = self.reader.read(self.settings.batch_size, MAX_BATCH_BYTES)
        if records:
            self._obey(self.mailbox.receive())  # a busy loop never waits on the mailbox
        for record in records:
            for rule, finding in self.detector.take(record.lsn, record.payload):
                self.outbox.add(alert_frame(rule, finding))
        if records:
            self.counters.committed = self.detector.position
            self._flush()
            if len(records) < self.settings.batch_size and not self._draining:
                self._wait(LINGER_S)
        if now >= self._next_snapshot and self._save():
            self._next_snapshot = now + self.settings.snapshot_interval_s
        if not records:
            if self._draining and not self.outbox.pending:
                self._stopping = True
            else:
                self._wait(IDLE_LOOK_S, until_growth=True)

    def _flush(self) -> bool:
        """Alerts to the spool; False (logged, retried after a backoff) when the spool cannot take them."""
        try:
            self.counters.alerts += self.outbox.flush()
        except OSError as exc:
            delay = self._backoff.failed()
            self._problem = f"{len(self.outbox.pending)} alerts wait for the spool: {exc}"
            log.error(
                "detect: cannot write %d alerts to the spool (%s); they wait, retrying in %.1fs",
                len(self.outbox.pending),
                exc,
                delay,
            )
            self._wait(delay)
            return False
        self._backoff.succeeded()
        self._problem = None
        return True

    def _save(self) -> bool:
        """State and cursor at the position, if anything moved and every alert is in the spool."""
        position = self.detector.position
        if self.outbox.pending or position == self.reader.committed or position > self.reader.position:
            return False
        try:
            self.outbox.sync()
            make_private_dirs(self.layout.detect)
            write_atomically(self.state_path, self.detector.snapshot())
        except OSError as exc:
            log.error(
                "detect: cannot save its state (%s); its cursor stays at %d", exc, self.reader.committed
            )
            return False
        self.reader.commit(position)
        self.counters.snapshots += 1
        return True

    def _report(self, *, force: bool = False) -> None:
        counts, counters = self.detector.counts, self.counters
        counters.observed, counters.own = counts.observed, counts.own
        counters.undecodable = counts.undecodable
        counters.pending = len(self.outbox.pending)
        counters.keys, counters.evicted = self.detector.keys, self.detector.evicted
        interval = self.config.supervisor.stats_interval_s
        self.mailbox.report(msgspec.structs.asdict(counters), interval, force=force, problem=self._problem)
