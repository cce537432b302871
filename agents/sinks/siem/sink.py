"""The SIEM sink: a batch from the runner becomes one or more HTTP requests to the destination.

A batch from the runner (up to REQUESTS_PER_COMMIT requests' worth, or what `flush_interval_s` let
gather) is cut into requests of at most `batch_size` events and `max_batch_bytes`. Each request
carries a batch id header, a hash of the WAL records it holds (the WAL's identity and their LSNs:
agents/wal/identity.py), so the same events sent again carry the same id and a receiver can recognise
a retried request; events with the ids of others (a sender chooses event ids) do not.

What the destination settled stays settled while the runner retries: events it took (or refused for
good) are remembered until the batch is done, so a retry sends only the rest: the failed items of a
bulk request, the requests after the one that failed. That memory lives in this process only: after a
crash the batch is sent again whole (at-least-once). Elasticsearch's `create` with the WAL record as
`_id` makes the repeat harmless; Splunk HEC has no such key, and indexes a repeat twice (splunk_hec.py).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Protocol

import httpx

from auditship.agents.config import AgentConfig
from auditship.agents.sinks.base import BuiltSink, Delivery, Entry, Refused, Sink
from auditship.agents.sinks.siem.classify import Reply, transport_failure
from auditship.agents.sinks.siem.config import SiemSinkConfig
from auditship.agents.sinks.siem.elasticsearch import Elasticsearch
from auditship.agents.sinks.siem.generic import Generic
from auditship.agents.sinks.siem.payload import payload_encoder
from auditship.agents.sinks.siem.splunk_hec import SplunkHec
from auditship.agents.sinks.tls import client_context
from auditship.agents.wal.identity import record_id, wal_identity
from auditship.ondisk.data_layout import DataLayout

logger = logging.getLogger("auditship.sinks.siem")


class Destination(Protocol):
    """One SIEM API (HEC, `_bulk`, generic): the bytes of an event in a request, and one request."""

    headers: dict[str, str]

    def item(self, entry: Entry) -> bytes:
        """The event's part of a request body."""
        ...

    def send(self, client: httpx.Client, items: list[bytes], batch_id: str) -> Reply:
        """One request carrying `items`, and what its answer means; httpx's errors when there is none."""
        ...


class SiemSink(Sink):
    name = "siem"

    def __init__(self, config: SiemSinkConfig, destination: Destination, wal_id: str) -> None:
        self._config = config
        self._destination = destination
        self._wal_id = wal_id
        self._client: httpx.Client | None = None
        # What the destination settled of the batch being written, by seq: delivered, or refused and why.
        self._delivered: set[int] = set()
        self._refused: dict[int, str] = {}
        self.retry_after_s = 0.0
        """After an ERRORED batch: how long the destination asked us to wait (Retry-After)."""
        self.progressed = False
        """After an ERRORED batch: the destination settled some of its events this time."""

    def open(self) -> None:
        # httpx logs each request at INFO: thousands of lines a second in the journal, and a cost per
        # request. Our own lines say what matters (failures, with the answer).
        logging.getLogger("httpx").setLevel(logging.WARNING)
        # Connections are made by the first request: a destination that is down must not stop the worker.
        self._client = httpx.Client(
            verify=client_context(self._config.verify_tls, self._config.ca_file),
            timeout=self._config.timeout_s,
            headers={"User-Agent": "auditship", **self._destination.headers},
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def write_batch(self, batch: list[Entry]) -> Delivery | Refused:
        client = self._client
        if client is None:
            raise RuntimeError("siem sink: write_batch() before open()")
        self.retry_after_s = 0.0
        settled_before = self._settled_count()
        todo = [entry for entry in batch if not self._is_settled(entry)] if settled_before else batch
        failure = ""
        limits = (self._config.batch_size, self._config.max_batch_bytes)
        for entries, items in _chunks(todo, self._destination, *limits):
            try:
                reply = self._destination.send(client, items, batch_id(self._wal_id, entries))
            except httpx.HTTPError as exc:  # no usable answer: the events wait in the WAL
                reply = transport_failure(exc)
            self.retry_after_s = max(self.retry_after_s, reply.retry_after_s)
            unsettled = self._settle(entries, reply)
            failure = failure or unsettled
            if reply.outcome is Delivery.ERRORED:
                break  # the destination is down or busy: the requests after this one wait too
        if failure:
            self.progressed = self._settled_count() > settled_before
            logger.warning(
                "siem sink: %d of %d events of batch %d-%d not delivered (%s); they stay in the WAL",
                sum(not self._is_settled(entry) for entry in batch),
                len(batch),
                batch[0].lsn,
                batch[-1].lsn,
                failure,
            )
            return Delivery.ERRORED
        refused = [entry for entry in batch if entry.lsn in self._refused] if self._refused else []
        reasons = [self._refused[entry.lsn] for entry in refused]
        self._delivered.clear()
        self._refused.clear()
        return Refused(refused, reasons) if refused else Delivery.DELIVERED

    def _settle(self, entries: list[Entry], reply: Reply) -> str:
        """Remember which of a request's `entries` its `reply` settled; why the first that it did not
        was not, or "" when it settled them all."""
        if not reply.items:  # one outcome for the whole request, the usual answer: no look at each event
            if reply.outcome is Delivery.ERRORED:
                return reply.reason
            seqs = [entry.lsn for entry in entries]
            if reply.outcome is Delivery.DELIVERED:
                self._delivered.update(seqs)
            else:
                self._refused.update(dict.fromkeys(seqs, reply.reason))
            return ""
        failure = ""
        for index, entry in enumerate(entries):
            outcome, reason = reply.of(index)
            if outcome is Delivery.DELIVERED:
                self._delivered.add(entry.lsn)
            elif outcome is Delivery.REJECTED:
                self._refused[entry.lsn] = reason
            else:
                failure = failure or reason
        return failure

    def _is_settled(self, entry: Entry) -> bool:
        return entry.lsn in self._delivered or entry.lsn in self._refused

    def _settled_count(self) -> int:
        return len(self._delivered) + len(self._refused)


def batch_id(wal_id: str, entries: list[Entry]) -> str:
    # One update of the records' names, a line each: the digest of updates one line at a time.
    names = "".join([record_id(wal_id, entry.lsn) + "\n" for entry in entries])
    return hashlib.blake2b(names.encode(), digest_size=16).hexdigest()


def _chunks(
    entries: list[Entry], destination: Destination, max_events: int, max_bytes: int
) -> Iterator[tuple[list[Entry], list[bytes]]]:
    """Consecutive runs of at most `max_events` entries whose items add up to at most `max_bytes` (an
    event larger than that goes in a request of its own: the destination decides whether it takes it)."""
    items = [destination.item(entry) for entry in entries]
    start = 0
    while start < len(items):
        end = min(start + max_events, len(items))
        size = sum(map(len, items[start:end]))
        while size > max_bytes and end > start + 1:  # rare: the run ends at the last item that fits
            end -= 1
            size -= len(items[end])
        yield entries[start:end], items[start:end]
        start = end


def destination(config: SiemSinkConfig, wal_id: str) -> Destination:
    """The destination's API; `wal_id`, the identity of the WAL the events come from, names them where
    the API takes a key (Elasticsearch's `_id`)."""
    payload = payload_encoder(config.payload)
    match config.destination_kind:
        case "splunk_hec":
            return SplunkHec(config, payload)
        case "elasticsearch":
            return Elasticsearch(config, payload, wal_id)
        case _:
            return Generic(config, payload)


REQUESTS_PER_COMMIT = 20
"""The runner's batch (one read of the WAL, one cursor commit) holds up to this many requests of
`batch_size` events. A commit costs two fsyncs, about as much as twenty small requests: committing after
each request would cap the sink near `batch_size` events per fsync pair. An event still waits at most
`flush_interval_s` for its batch."""


def build(config: AgentConfig) -> BuiltSink:
    settings = config.sinks.siem
    wal_id = wal_identity(DataLayout(config.data_path).wal)
    sink = SiemSink(settings, destination(settings, wal_id), wal_id)
    return BuiltSink(sink, settings.batch_size * REQUESTS_PER_COMMIT, settings.flush_interval_s)
