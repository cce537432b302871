"""The HTTP servers the middleware benchmarks measure: an app, bare or behind one middleware stack.

Apps (APPS):
- `empty`: Starlette, one route (`GET /users/{user_id}`) answering a 32-byte JSON body;
- `items`: FastAPI, one route (`GET /items`) answering 200 pydantic items, validated and serialised
  against its response model: about 1 ms of CPU, an endpoint that does some work.

Stacks (STACKS), the first three auditship's, the rest its peers (bench/requirements.txt):
- `plain`: no middleware;
- `audited`: AuditMiddleware, events to the agent through the process's emitter, as in production;
- `discarding`: AuditMiddleware with an emit that does nothing: the middleware's own cost;
- `bare` and `bare-sent`: not a product, a reference: the least a pure-ASGI middleware can do for a
  request's audit event in Python (an event id, the ids in effect, the request id header, the status,
  size and duration, one AuditEvent built), with none of AuditMiddleware's route templates, sampling,
  anomaly scan, user resolution, counters or guard; its event discarded, or sent through the process's
  emitter;
- `correlation-id`: asgi-correlation-id alone (returns X-Request-ID, nothing else);
- `asgi-structlog`: a hand-written pure-ASGI middleware writing one structlog JSON line per request,
  inside asgi-correlation-id: what a service writes for itself to get a record of each request;
- `prometheus`: prometheus-fastapi-instrumentator's default metrics;
- `base-http`: Starlette's BaseHTTPMiddleware with a dispatch that only calls the app;
- `otel`: OpenTelemetry's ASGI middleware (its server span only), a BatchSpanProcessor, and an
  exporter that does nothing with the spans.

Each server is uvicorn on h11 and asyncio (named, so that having httptools or uvloop installed changes
nothing), with its access log off. `python -m bench.apps STACK APP PORT_FILE` serves one in the
foreground until killed (what `--instructions` runs under valgrind).
"""

from __future__ import annotations

import gc
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

BODY = b'{"id": "42", "name": "User 42"}'
AUDITSHIP = ("plain", "audited", "discarding", "bare", "bare-sent")
PEERS = ("correlation-id", "asgi-structlog", "prometheus", "base-http", "otel")
STACKS = (*AUDITSHIP, *PEERS)
APPS = {"empty": "/users/42", "items": "/items"}
ITEMS = 200


def _empty_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def get_user(request: Request) -> Response:
        return Response(BODY, media_type="application/json")

    return Starlette(routes=[Route("/users/{user_id}", get_user)])


def _items_app() -> Any:
    from fastapi import FastAPI
    from pydantic import BaseModel

    class Item(BaseModel):
        id: int
        name: str
        price: float
        tags: list[str]
        in_stock: bool

    app = FastAPI()

    @app.get("/items", response_model=list[Item])
    async def items() -> list[Item]:
        return [
            Item(id=i, name=f"item {i}", price=i * 1.25, tags=["a", "b"], in_stock=i % 2 == 0)
            for i in range(ITEMS)
        ]

    return app


def _structlog_access_log(app: Any) -> Any:
    """The hand-written middleware of `asgi-structlog`, wrapped in asgi-correlation-id's."""
    import structlog
    from asgi_correlation_id import CorrelationIdMiddleware, correlation_id

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.WriteLoggerFactory(Path(os.devnull).open("w")),  # noqa: SIM115 - kept open
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger("access")

    async def access_log(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started, status = perf_counter(), 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_status)
        finally:
            client = scope.get("client")
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((perf_counter() - started) * 1000, 3),
                client=client[0] if client else None,
                request_id=correlation_id.get(),
            )

    return CorrelationIdMiddleware(access_log)


def _bare(app: Any, emit: Any) -> Any:
    """The `bare` stacks' middleware: what any per-request audit event costs, with nothing more."""
    from datetime import UTC, datetime

    import msgspec

    from shipper.correlation import CorrelationIds, reset_current, set_current
    from shipper.event import AuditEvent, AuditEventType, new_event_id

    template = AuditEvent(event_type=AuditEventType.API_REQUEST, service_name="bench")
    replace = msgspec.structs.replace

    async def audited(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started, status, size = perf_counter(), 500, 0
        event_id = new_event_id()
        stamp = (b"x-request-id", event_id.encode())

        async def send_recorded(message: Any) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message["headers"], stamp]}
            else:
                size += len(message.get("body", b""))
            await send(message)

        token = set_current(CorrelationIds(event_id, event_id))
        try:
            await app(scope, receive, send_recorded)
        finally:
            reset_current(token)
        route, method = scope.get("route"), scope["method"]
        endpoint = route.path if route is not None else scope["path"]
        user_agent = dict(scope["headers"]).get(b"user-agent")
        emit(
            replace(
                template,
                event_id=event_id,
                timestamp=datetime.now(UTC),
                message=f"{method} {endpoint} {status}",
                action=f"{method} {endpoint}",
                method=method,
                endpoint=endpoint,
                status_code=status,
                duration_ms=(perf_counter() - started) * 1000,
                response_size=size,
                correlation_id=event_id,
                request_id=event_id,
                source_ip=scope["client"][0],
                user_agent=user_agent.decode("latin-1") if user_agent else None,
                details={"path": scope["path"]},
            )
        )

    return audited


def _otel(app: Any) -> Any:
    from opentelemetry import trace
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Nowhere(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Nowhere()))
    trace.set_tracer_provider(provider)
    # Its receive and send spans left out: the server span is what a request record compares with.
    return OpenTelemetryMiddleware(app, exclude_spans=["receive", "send"], tracer_provider=provider)


def build(stack: str, app_name: str, *, linger_ms: float | None = None) -> tuple[Any, Any]:
    """The ASGI app to serve for `stack` on `app_name`, and auditship's recorder (None for the others).
    `linger_ms` sets the process emitter's linger (audited)."""
    app = _empty_app() if app_name == "empty" else _items_app()
    recorder = None
    if stack in ("audited", "discarding"):
        from shipper.config import AuditContext
        from shipper.emitter import get_emitter
        from shipper.middleware.asgi import setup_fastapi_audit_middleware

        context = AuditContext(service_name="bench")
        if stack == "discarding":
            recorder = setup_fastapi_audit_middleware(app, context=context, emit=lambda event: None)
        else:
            recorder = setup_fastapi_audit_middleware(app, context=context)
            if linger_ms is not None:
                get_emitter().linger_ms = linger_ms
    elif stack in ("bare", "bare-sent"):
        from shipper.dispatch import default_emit
        from shipper.emitter import get_emitter

        if stack == "bare-sent" and linger_ms is not None:
            get_emitter().linger_ms = linger_ms
        return _bare(app, default_emit if stack == "bare-sent" else lambda event: None), None
    elif stack == "correlation-id":
        from asgi_correlation_id import CorrelationIdMiddleware

        app.add_middleware(CorrelationIdMiddleware)
    elif stack == "prometheus":
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator().instrument(app)
    elif stack == "base-http":
        from starlette.middleware.base import BaseHTTPMiddleware

        async def dispatch(request: Any, call_next: Any) -> Any:
            return await call_next(request)

        app.add_middleware(BaseHTTPMiddleware, dispatch=dispatch)
    elif stack == "asgi-structlog":
        return _structlog_access_log(app), None
    elif stack == "otel":
        return _otel(app), None
    elif stack != "plain":
        raise ValueError(f"unknown stack {stack!r}")
    return app, recorder


def http_server(
    stack: str, app_name: str = "empty", *, linger_ms: float | None = None
) -> tuple[Any, socket.socket, Any]:
    """A uvicorn server for `stack` on `app_name`, its socket listening on a free loopback port, and
    auditship's recorder (None for the other stacks)."""
    import uvicorn

    app, recorder = build(stack, app_name, linger_ms=linger_ms)
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without it
    # every response waits ~40 ms for a delayed ACK (Nagle).
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    # Listening before uvicorn starts: the load generator's first connections wait in the backlog.
    listener.listen(1024)
    config = uvicorn.Config(
        app, http="h11", loop="asyncio", log_level="warning", access_log=False, lifespan="off"
    )
    return uvicorn.Server(config), listener, recorder


def serve(stack: str, app_name: str, port_file: Path, linger_ms: float | None) -> None:
    """Serve in the foreground until killed, after writing the port to `port_file`."""
    server, listener, _ = http_server(stack, app_name, linger_ms=linger_ms)
    # What startup made (imports, the app) is put out of the collector's reach, as servers that preload
    # their app do: otherwise each full collection scans all of it, the items app runs one every couple
    # of hundred requests, and whether one more falls among a stack's counted requests would move its
    # count by some 10k instructions a request.
    gc.freeze()
    port_file.write_text(str(listener.getsockname()[1]))
    server.run(sockets=[listener])


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else None)
