"""When the middleware concludes a request, and what it stands: the event is sent when the response's last
byte is, so that background work counts neither in its duration nor in its outcome (and is recorded apart
when it fails); a scope missing keys never fails the request; the websocket handshake's request id header
can be switched off. Events collected by capture_events()."""

from __future__ import annotations

import asyncio
import threading

import anyio
import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI
from starlette.types import Message, Receive, Scope, Send

from shipper.config import AuditContext
from shipper.event import AuditEvent, AuditEventType
from shipper.middleware.asgi import AuditMiddleware, setup_fastapi_audit_middleware
from shipper.middleware.config import AuditMiddlewareConfig
from shipper.middleware.recorder import AuditRecorder
from shipper.testing import capture_events
from tests.shipper.middleware.apps import fastapi_app, websocket_session
from tests.shipper.middleware.serving import served
from tests.waiting import wait_for


def reports_app(released: threading.Event, config: AuditMiddlewareConfig) -> tuple[FastAPI, AuditRecorder]:
    """POST /reports/{id} answers at once and leaves a background task that waits for `released`, then
    fails when asked to (`?fail=true`)."""
    app = FastAPI()

    async def mail_report(fail: bool) -> None:
        await anyio.to_thread.run_sync(released.wait, 10)
        if fail:
            raise ConnectionError("mail server down")

    @app.post("/reports/{report_id}")
    async def create_report(
        report_id: str, background: BackgroundTasks, fail: bool = False
    ) -> dict[str, str]:
        background.add_task(mail_report, fail)
        return {"report": report_id}

    recorder = setup_fastapi_audit_middleware(app, config)
    return app, recorder


def test_the_request_event_is_sent_with_the_response_before_background_work_ends() -> None:
    """Under uvicorn: the request's event (200, SUCCESS) is there while its background task still waits;
    when the task then fails, a BUSINESS_LOGIC event background_task_failed (ERROR, HIGH) follows with
    the request's ids, endpoint and status and the exception's type; the request event is unchanged."""
    released = threading.Event()
    app, recorder = reports_app(released, AuditMiddlewareConfig())
    with capture_events() as events, served(app) as url, httpx.Client(base_url=url) as client:
        response = client.post("/reports/7", params={"fail": "true"})
        assert response.status_code == 200
        [request] = wait_for(lambda: events.of_type(AuditEventType.API_REQUEST), 10, "the request's event")
        assert not released.is_set()  # so its duration cannot include the background task
        released.set()
        [failure] = wait_for(
            lambda: events.of_type(AuditEventType.BUSINESS_LOGIC), 10, "the background failure event"
        )
    assert (request.status_code, request.outcome, request.severity) == (200, "success", "info")
    assert request.details == {"path": "/reports/7"}
    assert request.correlation_id == response.headers["x-request-id"]
    assert (failure.action, failure.outcome, failure.severity) == ("background_task_failed", "error", "high")
    assert failure.details == {"path": "/reports/7", "exception": "ConnectionError"}
    assert (failure.endpoint, failure.status_code, failure.correlation_id) == (
        "/reports/{report_id}",
        200,
        request.correlation_id,
    )
    assert failure.event_id != request.event_id
    assert [e.event_type for e in events] == ["api_request", "business_logic"]
    assert (recorder.stats.requests, recorder.stats.events) == (1, 2)


def test_background_work_that_succeeds_adds_nothing_and_a_failure_is_sent_even_when_sampled_out() -> None:
    """With sample_rate 0 the ordinary request event is left out, but its background task's failure is
    sent, carrying the request's facts; a background task that succeeds yields no event."""
    released = threading.Event()
    released.set()
    app, recorder = reports_app(released, AuditMiddlewareConfig(sample_rate=0.0))

    async def call() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
            await client.post("/reports/1")
            await client.post("/reports/2", params={"fail": "true"})

    with capture_events() as events:
        asyncio.run(call())
    [failure] = events
    assert (failure.event_type, failure.action, failure.details["path"]) == (
        "business_logic",
        "background_task_failed",
        "/reports/2",
    )
    stats = recorder.stats
    assert (stats.requests, stats.sampled_out, stats.events, stats.errors) == (2, 2, 1, 0)


async def no_content(scope: Scope, receive: Receive, send: Send) -> None:
    """A bare ASGI app that reads nothing of the scope."""
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def through_middleware(scope: Scope, config: AuditMiddlewareConfig) -> tuple[list[Message], AuditRecorder]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = AuditMiddleware(no_content, config)
    asyncio.run(middleware(scope, receive, send))
    return sent, middleware.recorder


# Every option that reads headers, the client or the query string is on.
READING_EVERYTHING = AuditMiddlewareConfig(log_headers=True, trusted_proxies=["127.0.0.1"], log_body=True)


def test_a_scope_with_only_type_method_and_path_is_audited() -> None:
    """No headers, client, query string, raw or root path: the response goes out with its request id and
    the request is audited with what there is."""
    with capture_events() as events:
        sent, recorder = through_middleware(
            {"type": "http", "method": "GET", "path": "/bare"}, READING_EVERYTHING
        )
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 204
    [event] = events
    assert (event.endpoint, event.status_code, event.source_ip, event.user_agent) == (
        "/bare",
        204,
        None,
        None,
    )
    assert event.details["request_headers"] == {}
    assert sent[0]["headers"] == [(b"x-request-id", (event.correlation_id or "").encode())]
    assert recorder.stats.errors == 0


@pytest.mark.parametrize(
    "scope",
    [
        {"type": "http", "method": "GET"},
        {"type": "http", "path": "/no-method", "headers": []},
        {"type": "http", "method": "GET", "path": "/odd", "headers": [(b"x-request-id", None)]},
    ],
    ids=["no path", "no method", "a header without a value"],
)
def test_a_scope_the_middleware_cannot_read_never_fails_the_request(scope: Scope) -> None:
    """The app's response reaches the client as it was sent; the request yields no event and is counted
    in stats.errors."""
    with capture_events() as events:
        sent, recorder = through_middleware(scope, READING_EVERYTHING)
    assert [(m["type"], m.get("status")) for m in sent] == [
        ("http.response.start", 204),
        ("http.response.body", None),
    ]
    assert list(events) == []
    assert recorder.stats.errors == 1


def test_the_request_id_header_on_websocket_handshakes_can_be_switched_off() -> None:
    """websocket_request_id_header False: the accept carries only the app's headers, as Starlette's own
    tests expect; the connection is audited and correlated as before."""
    sent: list[AuditEvent] = []
    config = AuditMiddlewareConfig(websocket_request_id_header=False)
    app, _ = fastapi_app(config, AuditContext(service_name="chat"), sent.append)
    accepted = asyncio.run(websocket_session(app, "/ws", ["hi"]))[0]
    assert accepted == {"type": "websocket.accept", "subprotocol": None, "headers": []}
    [event] = sent
    assert (event.method, event.status_code) == ("WEBSOCKET", 101)
    assert event.correlation_id
