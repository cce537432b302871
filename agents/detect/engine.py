"""`Detector`: the rules over WAL records, in WAL order, and their state as one snapshot.

Each record is decoded once (observed.py) and offered to the rules that want its event type, in the
order of rules.py. The detector's own alerts are not offered to any. What a rule finds comes back as
(rule, Finding); the worker sends it on.

`position` is the WAL seq of the last record taken in: a record at or below it is skipped, so a worker
that restarts from a cursor behind its snapshot (a crash between the two writes) counts nothing twice.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from auditship.agents.detect.config import DetectConfig
from auditship.agents.detect.family import Family
from auditship.agents.detect.finding import Finding
from auditship.agents.detect.observed import frame_decoder, is_own
from auditship.agents.detect.rules import Rule

log = logging.getLogger("auditship.detect")
SNAPSHOT_VERSION = 1
Found = tuple[Rule, Finding]
NOTHING: list[Found] = []
"""What `take` returns when nothing is found; never to be changed."""


class Snapshot(msgspec.Struct):
    lsn: int
    rules: dict[str, bytes]
    """Each rule's saved state (Family.dump)."""
    version: int = SNAPSHOT_VERSION


class DetectCounts(msgspec.Struct):
    observed: int = 0
    """Events offered to the rules."""
    own: int = 0
    """The detector's own alerts, passed over."""
    undecodable: int = 0
    """WAL records that did not decode: skipped."""
    found: int = 0
    """Alerts raised."""


class Detector:
    def __init__(self, config: DetectConfig) -> None:
        self.rules: list[tuple[Rule, Family[Any]]] = config.build()
        self.position = 0
        self.counts = DetectCounts()
        every = [pair for pair in self.rules if pair[1].types is None]
        self._any = tuple(every)
        self._routes: dict[str, tuple[tuple[Rule, Family[Any]], ...]] = {}
        for event_type in {kind for _, family in self.rules for kind in family.types or ()}:
            self._routes[event_type] = tuple(
                pair for pair in self.rules if pair[1].types is None or event_type in pair[1].types
            )

    def take(self, lsn: int, payload: bytes) -> list[Found]:
        """Offer the record at `lsn` to the rules; what they find (most often nothing: NOTHING, shared)."""
        if lsn <= self.position:
            return NOTHING
        self.position = lsn
        try:
            event = frame_decoder.decode(payload).event
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            # The intake validated it: damage or a bug, worth seeing, not worth stopping for.
            self.counts.undecodable += 1
            log.error("detect: WAL record %d undecodable (%s); skipped", lsn, exc)
            return NOTHING
        counts = self.counts
        if is_own(event):
            counts.own += 1
            return NOTHING
        counts.observed += 1
        ts = event.timestamp.timestamp()
        found = NOTHING
        for rule, family in self._routes.get(event.event_type, self._any):
            finding = family.observe(event, ts, lsn)
            if finding is not None:
                found = [*found, (rule, finding)]
                counts.found += 1
        return found

    @property
    def keys(self) -> int:
        """States held, over every rule."""
        return sum(len(family.table) for _, family in self.rules)

    @property
    def evicted(self) -> int:
        return sum(family.table.evicted for _, family in self.rules)

    def refresh(self) -> None:
        """Let each rule read again what it reads from outside the WAL (a deny list)."""
        for _, family in self.rules:
            family.refresh()

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(
            Snapshot(self.position, {rule.name: family.dump() for rule, family in self.rules})
        )

    def restore(self, data: bytes, source: str) -> None:
        """Take back a snapshot: its position, and the state of each rule still configured. A rule
        whose saved state does not fit (its settings' family changed) starts afresh, logged."""
        try:
            snapshot = msgspec.msgpack.decode(data, type=Snapshot)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            log.error("detect: %s is no detector state (%s); every rule starts afresh", source, exc)
            return
        if snapshot.version != SNAPSHOT_VERSION:
            log.warning("detect: %s is of version %d; every rule starts afresh", source, snapshot.version)
            return
        self.position = snapshot.lsn
        for rule, family in self.rules:
            saved = snapshot.rules.get(rule.name)
            if saved is None:
                continue
            try:
                family.load(saved)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                log.warning("detect: the saved state of %s does not fit (%s); it starts anew", rule.name, exc)
