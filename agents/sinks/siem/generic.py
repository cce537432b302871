"""A generic collector: each request is a JSON array of events, POSTed with the API key in a header
(the seed's `siem_endpoint` and `api_key`). Any 2xx takes the whole batch."""

from __future__ import annotations

import httpx

from auditship.agents.sinks.base import Entry
from auditship.agents.sinks.siem.classify import BATCH_ID_HEADER, Reply, reply_to
from auditship.agents.sinks.siem.config import SiemSinkConfig
from auditship.agents.sinks.siem.payload import PayloadEncoder


class Generic:
    def __init__(self, config: SiemSinkConfig, payload: PayloadEncoder) -> None:
        self._payload = payload
        self._url = config.endpoint
        self.headers = {config.api_key_header: config.api_key} if config.api_key else {}

    def item(self, entry: Entry) -> bytes:
        return self._payload(entry.event)

    def send(self, client: httpx.Client, items: list[bytes], batch_id: str) -> Reply:
        response = client.post(
            self._url,
            content=b"[" + b",".join(items) + b"]",
            headers={"Content-Type": "application/json", BATCH_ID_HEADER: batch_id},
        )
        return reply_to(response)
