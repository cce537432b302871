"""Elasticsearch and OpenSearch: `POST /_bulk`, NDJSON, one `create` per event, its WAL record as `_id`.

The `_id` is `<WAL id>-<LSN>` (agents/wal/identity.py): what the agent assigned, not the event id,
which is the sender's to choose; keyed by that, whoever sent an id first kept the real event out.
`create` makes a repeat harmless: a record the index already has answers 409, which counts as
delivered, so a batch sent again after a crash or a timeout is stored once. Two events with one
event id are two documents; search `event_id` to find them. A 200 may still carry
per-item errors: each item is read, and only the failed ones are retried (429 and 5xx: the cluster is
busy) or refused for good (any other 4xx, such as a mapping conflict, with the error as the reason).
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from auditship.agents.masking import url_without_secrets
from auditship.agents.sinks.base import Delivery, Entry
from auditship.agents.sinks.siem.classify import BATCH_ID_HEADER, Reply, outcome_of_status, reply_to
from auditship.agents.sinks.siem.config import SiemSinkConfig
from auditship.agents.sinks.siem.payload import PayloadEncoder
from auditship.agents.wal.identity import record_id

DEFAULT_INDEX = "auditship"


class _Bulk(msgspec.Struct):
    errors: bool
    items: list[dict[str, dict[str, Any]]] = []


_bulk_decoder = msgspec.json.Decoder(_Bulk)
_json = msgspec.json.Encoder()


class Elasticsearch:
    def __init__(self, config: SiemSinkConfig, payload: PayloadEncoder, wal_id: str) -> None:
        self._payload = payload
        self._wal_id = wal_id
        self._url = config.endpoint.rstrip("/").removesuffix("/_bulk") + "/_bulk"
        self._shown_url = url_without_secrets(self._url)  # for reasons, which logs and dead letters keep
        self._action = b'{"create":{"_index":%b,"_id":' % _json.encode(config.index or DEFAULT_INDEX)
        self.headers = {"Authorization": f"ApiKey {config.api_key}"} if config.api_key else {}

    def item(self, entry: Entry) -> bytes:
        key = _json.encode(record_id(self._wal_id, entry.lsn))
        return b"%b%b}}\n%b\n" % (self._action, key, self._payload(entry.event))

    def send(self, client: httpx.Client, items: list[bytes], batch_id: str) -> Reply:
        response = client.post(
            self._url,
            content=b"".join(items),
            headers={"Content-Type": "application/x-ndjson", BATCH_ID_HEADER: batch_id},
        )
        reply = reply_to(response)
        if reply.outcome is not Delivery.DELIVERED:
            return reply
        try:
            bulk = _bulk_decoder.decode(response.content)
        except msgspec.DecodeError as exc:
            return Reply(Delivery.ERRORED, f"{self._shown_url}: unreadable bulk answer ({exc})")
        if not bulk.errors:
            return reply
        if len(bulk.items) != len(items):
            shown = f"{self._shown_url}: {len(bulk.items)} results for {len(items)} items"
            return Reply(Delivery.ERRORED, shown)
        return Reply(Delivery.DELIVERED, items=_failed_items(bulk.items))


def _failed_items(results: list[dict[str, dict[str, Any]]]) -> dict[int, tuple[Delivery, str]]:
    failed = {}
    for index, result in enumerate(results):
        # Each result is {"create": {...}}: one key, the action's name.
        outcome = next(iter(result.values()), {})
        status = int(outcome.get("status", 0))
        if 200 <= status < 300 or status == 409:
            continue
        error = outcome.get("error") or {}
        reason = f"bulk item {outcome.get('_id')}: {status} {error.get('type')}: {error.get('reason')}"
        failed[index] = (outcome_of_status(status), reason)
    return failed
