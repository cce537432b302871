"""A SIEM on 127.0.0.1 for tests and benchmarks: Splunk HEC, Elasticsearch `_bulk` and a generic JSON
POST, served by uvicorn from a thread (or a process), and told how to misbehave.

    HEC      POST /services/collector/event (Authorization: Splunk <token>; one envelope a line),
             with `ack=True` an ackId per request and POST /services/collector/ack
    _bulk    POST /_bulk (NDJSON `create` with `_id`; 409 for an id it has; per-item failures)
    generic  POST /ingest (a JSON array; the API key in X-API-Key)

Knobs: `answer_next(n, status, ...)` scripts the next n answers (503, 429 with Retry-After...),
`slow_next(n, seconds)` delays them, `refuse_ids`/`throttle_ids` fail single bulk items (named by
their `_id` or their event's `event_id`), and
`acks_withheld` keeps HEC from acknowledging. Every request is recorded (`requests`).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from msgspec import json
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.waiting import wait_for

TOKEN = "test-hec-token"
API_KEY = "test-api-key"


@dataclass
class Seen:
    """One request to an event endpoint, as the server saw and answered it."""

    path: str
    batch_id: str | None
    event_ids: list[str]
    size: int  # bytes of the body
    status: int
    at: float  # time.monotonic() when it arrived


@dataclass
class _Scripted:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeSiem:
    token: str = TOKEN
    api_key: str = API_KEY
    ack: bool = False
    store: bool = True
    """False keeps only counts, and decodes no event (of a bulk request only its actions): for
    benchmarks, where millions of events pass through, a receiver that answers at once."""
    hec_events: list[dict[str, Any]] = field(default_factory=list)
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    generic_events: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    received: int = 0
    first_at: float = 0.0  # time.time() of the first and the last request that delivered events
    last_at: float = 0.0
    refuse_ids: set[str] = field(default_factory=set)
    throttle_ids: dict[str, int] = field(default_factory=dict)
    acks_withheld: bool = False
    ack_polls: int = 0
    _script: deque[_Scripted] = field(default_factory=deque)
    _slow: deque[float] = field(default_factory=deque)
    _ack_ids: itertools.count[int] = field(default_factory=itertools.count)
    _acked: dict[tuple[str, int], bool] = field(default_factory=dict)

    @property
    def doc_event_ids(self) -> list[str]:
        """The event ids of the indexed documents, in the order they were created."""
        return [doc["event_id"] for doc in self.docs.values()]

    def answer_next(
        self, count: int, status: int, retry_after: str | None = None, body: dict[str, Any] | None = None
    ) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        for _ in range(count):
            self._script.append(_Scripted(status, body or {"text": "scripted", "code": 9}, headers))

    def slow_next(self, count: int, seconds: float) -> None:
        self._slow.extend([seconds] * count)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/services/collector/event", self._hec_event, methods=["POST"]),
                Route("/services/collector/ack", self._hec_ack, methods=["POST"]),
                Route("/_bulk", self._bulk, methods=["POST"]),
                Route("/ingest", self._generic, methods=["POST"]),
                Route("/stats", self._stats, methods=["GET"]),
            ]
        )

    async def _prelude(
        self, request: Request, body: bytes, authorized: bool, ids: list[str]
    ) -> Response | None:
        """Record the request; delay it or answer for it when told to."""
        answer: Response | None = None
        if not authorized:
            answer = JSONResponse({"text": "Invalid token", "code": 4}, 403)
        elif self._script:
            scripted = self._script.popleft()
            answer = JSONResponse(scripted.body, scripted.status, headers=scripted.headers)
        status = answer.status_code if answer is not None else 200
        batch_id = request.headers.get("x-auditship-batch-id")
        if self.store:
            self.requests.append(Seen(request.url.path, batch_id, ids, len(body), status, time.monotonic()))
        if self._slow:
            await asyncio.sleep(self._slow.popleft())
        return answer

    async def _hec_event(self, request: Request) -> Response:
        body = await request.body()
        lines = [line for line in body.splitlines() if line.strip()]
        envelopes = [json.decode(line) for line in lines] if self.store else []
        ids = [e["event"].get("event_id") or e["event"]["metadata"]["uid"] for e in envelopes]
        authorized = request.headers.get("authorization") == f"Splunk {self.token}"
        if (answer := await self._prelude(request, body, authorized, ids)) is not None:
            return answer
        self._count(len(lines))
        self.hec_events.extend(envelopes)
        reply: dict[str, Any] = {"text": "Success", "code": 0}
        if self.ack:
            ack_id = next(self._ack_ids)
            self._acked[(request.headers.get("x-splunk-request-channel", ""), ack_id)] = True
            reply["ackId"] = ack_id
        return JSONResponse(reply)

    async def _hec_ack(self, request: Request) -> Response:
        self.ack_polls += 1
        channel = request.headers.get("x-splunk-request-channel", "")
        asked = json.decode(await request.body())["acks"]
        if not all((channel, ack_id) in self._acked for ack_id in asked):
            return JSONResponse({"text": "Invalid data channel", "code": 11}, 400)
        return JSONResponse({"acks": {str(ack_id): not self.acks_withheld for ack_id in asked}})

    async def _bulk(self, request: Request) -> Response:
        body = await request.body()
        lines = [line for line in body.splitlines() if line.strip()]
        actions = [json.decode(line) for line in lines[::2]]
        docs = [json.decode(line) if self.store else {} for line in lines[1::2]]
        pairs = [(action["create"], doc) for action, doc in zip(actions, docs, strict=True)]
        authorized = request.headers.get("authorization") == f"ApiKey {self.api_key}"
        ids = [action["_id"] for action, _ in pairs]
        if (answer := await self._prelude(request, body, authorized, ids)) is not None:
            return answer
        items = [{"create": self._bulk_item(action, doc)} for action, doc in pairs]
        errors = any(item["create"]["status"] >= 300 for item in items)
        bulk = {"took": 1, "errors": errors, "items": items}
        return Response(json.encode(bulk), media_type="application/json")  # msgspec: 500 items at once

    def _bulk_item(self, action: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
        doc_id = action["_id"]
        result: dict[str, Any] = {"_index": action["_index"], "_id": doc_id}
        named = (
            doc_id if doc_id in self.refuse_ids or doc_id in self.throttle_ids else doc.get("event_id", "")
        )
        if named in self.refuse_ids:
            error = {"type": "mapper_parsing_exception", "reason": "failed to parse field [details]"}
            return result | {"status": 400, "error": error}
        if self.throttle_ids.get(named, 0) > 0:
            self.throttle_ids[named] -= 1
            error = {"type": "es_rejected_execution_exception", "reason": "rejected execution"}
            return result | {"status": 429, "error": error}
        if doc_id in self.docs:
            error = {"type": "version_conflict_engine_exception", "reason": "document already exists"}
            return result | {"status": 409, "error": error}
        self._count(1)
        self.docs[doc_id] = doc if self.store else {}
        return result | {"status": 201, "result": "created"}

    async def _generic(self, request: Request) -> Response:
        body = await request.body()
        events = json.decode(body)
        authorized = request.headers.get("x-api-key") == self.api_key
        ids = [event["event_id"] for event in events]
        if (answer := await self._prelude(request, body, authorized, ids)) is not None:
            return answer
        self._count(len(events))
        if self.store:
            self.generic_events.extend(events)
        return JSONResponse({"accepted": len(events)})

    async def _stats(self, request: Request) -> Response:
        return JSONResponse({"received": self.received, "first_at": self.first_at, "last_at": self.last_at})

    def _count(self, events: int) -> None:
        self.received += events
        self.last_at = time.time()
        self.first_at = self.first_at or self.last_at


class ServedSiem:
    """`siem` served by uvicorn on 127.0.0.1 from a thread; `port` is known before it listens."""

    def __init__(
        self, siem: FakeSiem, sock: socket.socket | None = None, tls: tuple[Path, Path] | None = None
    ) -> None:
        """`tls`: (certificate, key) to serve HTTPS instead of HTTP."""
        self.siem = siem
        self._scheme = "https" if tls else "http"
        if sock is None:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
        # Bound but not listening: until start(), connections to the port are refused, as a SIEM
        # that is down refuses them.
        self._socket = sock
        self.port: int = sock.getsockname()[1]
        certificate, key = tls or (None, None)
        config = uvicorn.Config(
            siem.app(),
            log_level="warning",
            lifespan="off",
            ws="none",
            http="h11",
            ssl_certfile=certificate,
            ssl_keyfile=key,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}"

    def start(self) -> ServedSiem:
        self._thread.start()
        wait_for(lambda: self._server.started, 10, "the fake SIEM to listen")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join(10)
        self._socket.close()


def serve(port: int, ack: bool = False) -> None:
    """Serve a counting-only FakeSiem on 127.0.0.1:`port` until killed: a process target for benchmarks
    (GET /stats says how many events it took, and when)."""
    app = FakeSiem(store=False, ack=ack).app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none", http="h11")
