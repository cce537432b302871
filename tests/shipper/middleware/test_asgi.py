"""The Starlette/FastAPI middleware end to end: apps served by uvicorn on 127.0.0.1 (and through httpx's
ASGI transport) and called with httpx; the events are asserted where they arrive, in a real agent's file."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx
import pytest

from auditship.agents.crypto import Keyring, decrypt_sensitive
from shipper.config import AuditContext
from shipper.emitter import Emitter
from shipper.event import AuditEvent
from shipper.middleware.config import AuditMiddlewareConfig
from shipper.middleware.recorder import AuditRecorder
from tests.agentproc import RunningAgent
from tests.shipper.middleware.apps import STREAM_CHUNKS, fastapi_app, starlette_app, websocket_session
from tests.shipper.middleware.serving import served

pytestmark = pytest.mark.slow

Delivered = Callable[[int], list[AuditEvent]]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


def of_type(events: list[AuditEvent], event_type: str) -> list[AuditEvent]:
    return [event for event in events if event.event_type == event_type]


def test_a_request_yields_an_api_event_with_its_route_template_and_the_facts_of_the_exchange(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """GET /api/users/42 on FastAPI under uvicorn: one API_REQUEST with the template, the raw path, the
    status, sizes, duration, client, user agent and service; its id is returned and on the handler's event."""
    app, _ = fastapi_app(AuditMiddlewareConfig(), service_context, agent_emitter.emit)
    with served(app) as url, httpx.Client(base_url=url) as client:
        response = client.get("/api/users/42", headers={"user-agent": "tests/1.0"})
    assert response.status_code == 200
    read, request = delivered_events(2)
    assert read.event_type == "data_read"
    assert request.event_type == "api_request"
    assert request.method == "GET"
    assert request.endpoint == "/api/users/{user_id}"
    assert request.action == "GET /api/users/{user_id}"
    assert request.details == {"path": "/api/users/42"}
    assert (request.status_code, request.outcome, request.severity) == (200, "success", "info")
    assert request.response_size == len(response.content)
    assert request.request_size == 0
    assert request.duration_ms is not None and 0 < request.duration_ms < 5_000
    assert request.source_ip == "127.0.0.1"
    assert request.user_agent == "tests/1.0"
    assert (request.service_name, request.environment) == (service_context.service_name, "test")
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert request.correlation_id == request.request_id == response.headers["x-request-id"]
    assert read.correlation_id == request.correlation_id


def test_an_incoming_request_id_or_traceparent_correlates_the_handlers_events_and_comes_back(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """X-Request-ID is kept; without one the traceparent's trace id correlates and its ids are recorded; an
    id that does not look like one (spaces, here) is replaced by a new one."""
    app, _ = fastapi_app(AuditMiddlewareConfig(), service_context, agent_emitter.emit)
    traceparent = f"00-{TRACE_ID}-{SPAN_ID}-01"
    with served(app) as url, httpx.Client(base_url=url) as client:
        given = client.get("/api/users/1", headers={"x-request-id": "req-123", "traceparent": traceparent})
        traced = client.get("/api/users/2", headers={"traceparent": traceparent})
        forged = client.get("/api/users/3", headers={"x-request-id": "not an id; drop table"})
    assert given.headers["x-request-id"] == "req-123"
    assert traced.headers["x-request-id"] == TRACE_ID
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["x-request-id"])
    events = delivered_events(6)
    by_pair = [events[i : i + 2] for i in range(0, 6, 2)]
    for (read, request), response in zip(by_pair, (given, traced, forged), strict=True):
        assert read.correlation_id == request.correlation_id == response.headers["x-request-id"]
    assert [e.trace_id for e in events[:4]] == [TRACE_ID] * 4
    assert [e.span_id for e in events[:4]] == [SPAN_ID] * 4
    assert events[5].trace_id is None


def test_refusals_yield_auth_failure_access_denied_and_rate_limit_events(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """401, 403 and 429 each add their security event, with the request's ids and facts; a 404 adds none."""
    app, recorder = fastapi_app(
        AuditMiddlewareConfig(detect_anomalies=False), service_context, agent_emitter.emit
    )
    with served(app) as url, httpx.Client(base_url=url) as client:
        for status in (401, 403, 429, 404):
            assert client.get(f"/refuse/{status}").status_code == status
    events = delivered_events(7)
    assert len(events) == 7 == recorder.stats.events
    requests = of_type(events, "api_request")
    assert [e.status_code for e in requests] == [401, 403, 429, 404]
    derived = [e for e in events if e.event_type != "api_request"]
    assert [(e.event_type, e.action, e.status_code) for e in derived] == [
        ("auth_failure", "auth_failure", 401),
        ("access_denied", "access_denied", 403),
        ("rate_limit_exceeded", "rate_limited", 429),
    ]
    for event, request in zip(derived, requests, strict=False):
        assert event.correlation_id == request.correlation_id
        assert event.endpoint == "/refuse/{status}"
        assert (event.outcome, event.severity, event.source_ip) == ("failure", "medium", "127.0.0.1")
        assert event.event_id != request.event_id
    assert derived[0].message == "authentication failed: GET /refuse/{status} 401 from 127.0.0.1"


def test_an_unhandled_exception_is_an_error_event_with_status_500_and_still_propagates(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """Under uvicorn the client gets Starlette's 500; through the ASGI transport the exception reaches
    the caller. Both requests are recorded as ERROR (HIGH) with status 500 and the exception's type."""
    app, _ = fastapi_app(AuditMiddlewareConfig(), service_context, agent_emitter.emit)
    with served(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/boom").status_code == 500

    async def through_transport() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            await client.get("/boom")

    with pytest.raises(RuntimeError, match="the handler failed"):
        asyncio.run(through_transport())
    events = delivered_events(2)
    for event in events:
        assert (event.status_code, event.outcome, event.severity) == (500, "error", "high")
        assert event.details == {"path": "/boom", "exception": "RuntimeError"}


def test_a_slow_request_also_yields_a_slow_request_event(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """Past slow_request_threshold_ms a request adds an API_RESPONSE event with action slow_request."""
    app, _ = fastapi_app(
        AuditMiddlewareConfig(slow_request_threshold_ms=100), service_context, agent_emitter.emit
    )
    with served(app) as url, httpx.Client(base_url=url) as client:
        client.get("/slow")
        client.get("/api/users/1")
    events = delivered_events(4)
    [slow] = of_type(events, "api_response")
    assert (slow.action, slow.severity, slow.endpoint) == ("slow_request", "medium", "/slow")
    assert slow.duration_ms is not None and slow.duration_ms >= 100
    assert slow.details == {"path": "/slow", "threshold_ms": 100}


def test_traversal_and_injection_shaped_requests_and_bursts_of_401s_are_suspicious(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """An encoded ../ path and a SQL tautology in the query each raise SUSPICIOUS_ACTIVITY; so does the
    third 401 from one address within the window."""
    config = AuditMiddlewareConfig(auth_failure_threshold=3, auth_failure_window_s=60)
    app, recorder = fastapi_app(config, service_context, agent_emitter.emit)
    with served(app) as url, httpx.Client(base_url=url) as client:
        client.get("/api/users/%2e%2e%2f%2e%2e%2fetc%2fpasswd")
        client.get("/api/users/7", params={"name": "x' OR '1'='1"})
        for _ in range(3):
            client.get("/refuse/401")
    events = delivered_events(recorder.stats.events + 1)  # and the handler's DATA_READ
    suspicious = of_type(events, "suspicious_activity")
    assert [(e.action, e.severity) for e in suspicious] == [
        ("path_traversal", "high"),
        ("sql_injection", "high"),
        ("auth_failure_burst", "high"),
    ]
    assert suspicious[0].details["evidence"] == "/../"  # as decoded
    assert suspicious[1].details["evidence"] == "' OR '"
    assert suspicious[2].details["evidence"] == "3 authentication failures within 60 s"
    assert len(of_type(events, "auth_failure")) == 3
    assert recorder.stats.suspicious == 3


def test_headers_are_logged_with_credentials_redacted_and_bodies_truncated_and_encrypted(
    audit_agent: RunningAgent,
    service_context: AuditContext,
    agent_emitter: Emitter,
    delivered_events: Delivered,
) -> None:
    """Authorization, Cookie, Set-Cookie and a configured header are redacted; a body is logged only as
    its first max_body_size bytes, in `sensitive`, which the agent encrypts: not in the file in clear."""
    config = AuditMiddlewareConfig(
        log_headers=True, redact_headers=["X-Api-Key"], log_body=True, max_body_size=16
    )
    app, _ = fastapi_app(config, service_context, agent_emitter.emit)
    body = b'{"name": "alice", "password": "hunter2-hunter2"}'
    headers = {
        "authorization": "Bearer t0k3n",
        "cookie": "session=abc",
        "x-api-key": "k3y",
        "x-note": "kept",
        "content-type": "application/json",
    }
    with served(app) as url, httpx.Client(base_url=url) as client:
        response = client.post("/api/users", content=body, headers=headers)
    assert response.status_code == 201
    [event] = delivered_events(1)
    request_headers = event.details["request_headers"]
    assert {name: request_headers[name] for name in ("authorization", "cookie", "x-api-key", "x-note")} == {
        "authorization": "[REDACTED]",
        "cookie": "[REDACTED]",
        "x-api-key": "[REDACTED]",
        "x-note": "kept",
    }
    response_headers = event.details["response_headers"]
    assert response_headers["set-cookie"] == "[REDACTED]"
    assert response_headers["x-request-id"] == event.correlation_id
    assert event.request_size == event.response_size == len(body)
    written = (audit_agent.dirs.data / "files" / "audit.jsonl").read_bytes()
    for secret in (b"t0k3n", b"k3y", b"s3ss10n-s3cr3t", b"alice"):
        assert secret not in written
    opened = decrypt_sensitive(event, Keyring.load_or_create(audit_agent.dirs.keys))
    excerpt = {"text": body[:16].decode(), "size": len(body), "truncated": True}
    assert opened.sensitive == {"request_body": excerpt, "response_body": excerpt}


def test_sampling_drops_only_ordinary_request_events_and_counts_them(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """With sample_rate 0 no ordinary request event is sent and each is counted as sampled out; refusals,
    errors and the handler's own events are all sent."""
    app, recorder = fastapi_app(AuditMiddlewareConfig(sample_rate=0.0), service_context, agent_emitter.emit)
    with served(app) as url, httpx.Client(base_url=url) as client:
        for user in range(5):
            client.get(f"/api/users/{user}")
        client.get("/refuse/401")
        client.get("/boom")
    events = delivered_events(5 + 2 + 1)
    assert [e.event_type for e in events] == ["data_read"] * 5 + [
        "api_request",
        "auth_failure",
        "api_request",
    ]
    assert [e.status_code for e in of_type(events, "api_request")] == [401, 500]
    stats = recorder.stats
    assert (stats.requests, stats.sampled_out, stats.events) == (7, 5, 3)


def test_with_log_requests_off_only_the_security_events_are_sent(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """log_requests False: no API_REQUEST events, but a 403 still yields ACCESS_DENIED."""
    app, recorder = fastapi_app(
        AuditMiddlewareConfig(log_requests=False), service_context, agent_emitter.emit
    )
    with served(app) as url, httpx.Client(base_url=url) as client:
        client.get("/api/users/1")
        client.get("/refuse/403")
    assert [e.event_type for e in delivered_events(2)] == ["data_read", "access_denied"]
    assert recorder.stats.sampled_out == 0


def test_excluded_paths_pass_through_unaudited_and_are_counted(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """/health is excluded: it answers as before, yields no event, and is counted."""
    app, recorder = fastapi_app(
        AuditMiddlewareConfig(exclude_paths=["/health"]), service_context, agent_emitter.emit
    )
    with served(app) as url, httpx.Client(base_url=url) as client:
        health = client.get("/health")
        client.get("/api/users/1")
    assert health.json() == {"status": "ok"}
    assert "x-request-id" not in health.headers
    events = delivered_events(2)
    assert [e.details["path"] for e in of_type(events, "api_request")] == ["/api/users/1"]
    assert recorder.stats.excluded == 1


def test_streaming_lifespan_mounts_and_websockets_keep_working_under_the_middleware(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """The lifespan runs, a streamed body arrives whole and is counted, a mounted sub-app's route has its
    full template; a websocket connection yields one event when it ends (status 101, message bytes each
    way, close code), and one refused before accepting a 403, which is an ACCESS_DENIED too."""
    app, _ = fastapi_app(AuditMiddlewareConfig(), service_context, agent_emitter.emit)
    with served(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/started").json() == {"started": True}
        with client.stream("GET", "/stream") as streamed:
            chunks = list(streamed.iter_bytes())
        assert b"".join(chunks) == b"".join(STREAM_CHUNKS)
        assert client.get("/legacy/acme/items/7").json() == {"item": "7"}
    echoed = asyncio.run(websocket_session(app, "/ws", ["hi"]))
    assert [m["type"] for m in echoed] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert echoed[1]["text"] == "echo hi"
    assert (b"x-request-id", echoed[0]["headers"][-1][1]) in echoed[0]["headers"]
    closed = asyncio.run(websocket_session(app, "/ws-refused", []))
    assert [(m["type"], m["code"]) for m in closed] == [("websocket.close", 1008)]
    started, stream, legacy, websocket_event, refused, denied = delivered_events(6)
    assert started.endpoint == "/started"
    assert stream.response_size == len(b"".join(STREAM_CHUNKS))
    assert legacy.endpoint == "/legacy/{tenant}/items/{item_id}"
    assert legacy.details == {"path": "/legacy/acme/items/7"}
    assert (websocket_event.method, websocket_event.endpoint, websocket_event.status_code) == (
        "WEBSOCKET",
        "/ws",
        101,
    )
    assert websocket_event.request_size == len("hi")
    assert websocket_event.response_size == len("echo hi")
    assert websocket_event.details == {"path": "/ws", "close_code": 1000}
    assert (refused.status_code, refused.outcome) == (403, "failure")
    assert (denied.event_type, denied.endpoint) == ("access_denied", "/ws-refused")


def test_a_starlette_app_records_the_authenticated_user_and_mounted_apps(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """Middleware(AuditMiddleware, recorder=...) in a plain Starlette app: the user AuthenticationMiddleware
    put in scope["user"] is the event's user; a mounted bare ASGI app is one endpoint."""
    recorder = AuditRecorder(AuditMiddlewareConfig(), context=service_context, emit=agent_emitter.emit)
    app = starlette_app(recorder)
    with served(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/items/5", headers={"authorization": "Bearer alice"}).json() == {
            "item": 5,
            "user": "alice",
        }
        assert client.get("/items/6").status_code == 200
        assert client.get("/files/a/b.txt").text == "file /files/a/b.txt"
        assert client.get("/started").json() == {"started": True}
    alice, anonymous, files, started = delivered_events(4)
    assert (alice.endpoint, alice.user_id) == ("/items/{item_id:int}", "alice")
    assert anonymous.user_id is None
    assert (files.endpoint, files.details) == ("/files/{path:path}", {"path": "/files/a/b.txt"})
    assert started.status_code == 200
    assert recorder.stats.requests == 4


def test_a_user_resolver_names_the_user_and_one_that_raises_is_counted_not_fatal(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """A resolver given the scope names the user; when it raises the request still succeeds, its event has
    no user, and the failure is counted."""

    def from_header(scope: dict[str, object]) -> str | None:
        headers = dict(scope["headers"])  # type: ignore[call-overload]
        if b"x-crash" in headers:
            raise LookupError("resolver broke")
        return headers.get(b"x-user", b"").decode() or None

    app, recorder = fastapi_app(
        AuditMiddlewareConfig(user_resolver=from_header), service_context, agent_emitter.emit
    )
    with served(app) as url, httpx.Client(base_url=url) as client:
        client.get("/refuse/404", headers={"x-user": "bob"})
        assert client.get("/refuse/404", headers={"x-crash": "1"}).status_code == 404
    bob, crashed = delivered_events(2)
    assert bob.user_id == "bob"
    assert crashed.user_id is None
    assert recorder.stats.resolver_errors == 1


def test_the_same_apps_through_httpx_asgi_transport(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """Both apps called in-process through httpx.ASGITransport are audited the same way."""
    fastapi, _ = fastapi_app(AuditMiddlewareConfig(), service_context, agent_emitter.emit)
    starlette = starlette_app(
        AuditRecorder(AuditMiddlewareConfig(), context=service_context, emit=agent_emitter.emit)
    )

    async def call() -> list[httpx.Response]:
        responses = []
        for app, path in ((fastapi, "/api/users/9"), (starlette, "/items/3")):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                responses.append(await client.get(path))
        return responses

    first, second = asyncio.run(call())
    read, user, item = delivered_events(3)
    assert read.correlation_id == user.correlation_id == first.headers["x-request-id"]
    assert (user.endpoint, user.status_code) == ("/api/users/{user_id}", 200)
    assert (item.endpoint, item.correlation_id) == (
        "/items/{item_id:int}",
        second.headers["x-request-id"],
    )
    assert user.source_ip == item.source_ip == "127.0.0.1"


def test_x_forwarded_for_is_believed_only_through_trusted_proxies(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """From a trusted proxy (127.0.0.1), the address left of the trusted hops is the client; an entry
    written by the client itself, left of an untrusted hop, is not believed."""
    config = AuditMiddlewareConfig(trusted_proxies=["127.0.0.1", "10.0.0.0/8"])
    app, _ = fastapi_app(config, service_context, agent_emitter.emit)
    with served(app) as url, httpx.Client(base_url=url) as client:
        client.get("/refuse/404", headers={"x-forwarded-for": "203.0.113.9, 10.1.2.3"})
        client.get("/refuse/404", headers={"x-forwarded-for": "198.51.100.1, 203.0.113.7, 10.1.2.3"})
    first, second = delivered_events(2)
    assert first.source_ip == "203.0.113.9"
    assert second.source_ip == "203.0.113.7"
