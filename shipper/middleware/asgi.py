"""Starlette and FastAPI: `AuditMiddleware`, a pure ASGI middleware, and `setup_fastapi_audit_middleware`.

    app = FastAPI()
    recorder = setup_fastapi_audit_middleware(app, config, context=AuditContext(service_name="users"))
    ...
    recorder.stats.sampled_out  # counters: see MiddlewareStats

    # Starlette, or to share one recorder with gRPC interceptors:
    recorder = AuditRecorder(config, context=AuditContext(service_name="users"))
    app = Starlette(routes=routes, middleware=[Middleware(AuditMiddleware, recorder=recorder)])

Each HTTP request yields an API_REQUEST event (see shipper.middleware.recorder for what else): the
method; `endpoint`, the route template (`/api/users/{user_id}`, included routers and mounts in front:
shipper.middleware.routes) or, when no route matched, the path itself (percent-decoded, as ASGI gives
it), which is always in `details["path"]`; status, duration, body sizes, client address, user agent,
user id (shipper.middleware.user) and correlation ids. The handler runs with the correlation ids in
effect (shipper.correlation), so the events it logs carry them too, and the response carries the
request id in the request id header. The event is sent when the response's last byte is: background
work after it is not request time, and when it raises it is an event of its own
(AuditRecorder.record_after_response). Auditing never fails a request: a scope the middleware cannot
read lets the request through unaudited, counted in `stats.errors`.

`send` is wrapped to read the status and count body bytes, `receive` to count request bytes, so
streaming responses stream as before. Lifespan and any other scope pass straight through. A
websocket connection yields one event when it ends: method WEBSOCKET, status 101 if it was accepted
(else the status of the refusal: 403 for a close before accepting), sizes the bytes of the messages
each way and `details["close_code"]` when the app closed it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipper.config import AuditContext
from shipper.correlation import reset_current, set_current
from shipper.dispatch import Emit
from shipper.event import AuditEvent, new_event_id
from shipper.middleware.anomalies import Signal, scan_request
from shipper.middleware.config import AuditMiddlewareConfig
from shipper.middleware.ids import incoming_ids
from shipper.middleware.recorder import AuditRecorder, MiddlewareStats, given_or_built
from shipper.middleware.redaction import excerpt, http_headers
from shipper.middleware.routes import RouteTemplates
from shipper.middleware.user import UserSlot, request_ids


class _Exchange:
    """One request as it goes by: its ids, the status and sizes of its response, headers and body
    excerpts when they are logged; the request id header is added to the response. Its ids carry the
    slot `user` that set_audit_user fills (shipper.middleware.user).

    The request is concluded (its event built and sent) when the last byte of its response has been
    sent, so that work the app does after that (Starlette's BackgroundTasks) counts neither in its
    duration nor in its outcome; or, when the app returns or raises without finishing a response (and
    for websockets), then."""

    __slots__ = (
        "_middleware",
        "_receive",
        "_send",
        "_stamp",
        "body_limit",
        "close_code",
        "event",
        "event_id",
        "finished",
        "headers",
        "ids",
        "path",
        "request_body",
        "request_size",
        "response_body",
        "response_headers",
        "response_size",
        "root_path",
        "scope",
        "started",
        "status",
        "user",
        "websocket",
    )

    def __init__(
        self, middleware: AuditMiddleware, scope: Scope, receive: Receive, send: Send, path: str
    ) -> None:
        self.started = perf_counter()
        self._middleware = middleware
        self.scope = scope
        # Routing changes the scope's root_path as it enters mounts: the route templates need both as
        # they came.
        self.path = path
        self.root_path: str = scope.get("root_path", "")
        self.websocket = websocket = scope["type"] == "websocket"
        # A scope without headers must not fail the request: ASGI requires them, but a hand-written
        # scope (a test's, another middleware's) may leave them out.
        self.headers = headers = dict(scope.get("headers") or ())
        self.event_id = event_id = new_event_id()
        header = middleware.header
        request_id, traceparent = headers.get(header), headers.get(b"traceparent")
        incoming = (
            incoming_ids(_text(request_id), _text(traceparent), event_id)
            if request_id is not None or traceparent is not None
            else None
        )
        self.user = user = UserSlot()
        self.ids = request_ids(incoming, event_id, user)
        self._receive = receive
        self._send = send
        settings = middleware.recorder.settings
        stamped = not websocket or settings.websocket_request_id_header
        self._stamp = (header, (self.ids.correlation_id or "").encode("latin-1")) if stamped else None
        self.body_limit = limit = settings.body_limit
        self.status: int | None = None
        self.close_code: int | None = None
        self.finished: float | None = None
        self.event: AuditEvent | None = None
        self.request_size = 0
        self.response_size = 0
        self.request_body = bytearray() if limit else None
        self.response_body = bytearray() if limit and settings.log_responses else None
        self.response_headers: list[tuple[bytes, bytes]] | None = None

    async def receive(self) -> Message:
        message = await self._receive()
        kind = message["type"]
        if kind in {"http.request", "websocket.receive"}:
            data = _payload(message)
            self.request_size += len(data)
            if self.request_body is not None:
                _keep(self.request_body, data, self.body_limit)
        return message

    async def send(self, message: Message) -> None:
        # Tested in the order of frequency: a response has one start and one or more body messages.
        kind = message["type"]
        if kind == "http.response.body":
            body = message.get("body", b"")
            self.response_size += len(body)
            if self.response_body is not None:
                _keep(self.response_body, body, self.body_limit)
            await self._send(message)
            if not message.get("more_body", False):
                self.finished = perf_counter()
                self._middleware.conclude(self, None)
            return
        if kind == "http.response.start":
            self.status = message["status"]
            message = self._stamped(message)
        else:
            message = self._other(kind, message)
        await self._send(message)
        if kind == "http.response.pathsend":  # a file sent by the server: the whole body at once
            self.finished = perf_counter()
            self._middleware.conclude(self, None)

    def _other(self, kind: str, message: Message) -> Message:
        """Websocket messages; anything else (trailers, pathsend...) goes by as it is."""
        if kind in {"websocket.send", "websocket.http.response.body"}:
            self.response_size += len(_payload(message))
        elif kind == "websocket.http.response.start":
            self.status = message["status"]
            return self._stamped(message)
        elif kind == "websocket.accept":
            self.status = 101
            return self._stamped(message)
        elif kind == "websocket.close":
            self.close_code = message.get("code", 1000)
            if self.status is None:
                self.status = 403  # what servers answer a handshake closed before it was accepted
        return message

    def _stamped(self, message: Message) -> Message:
        headers = message.get("headers") or []
        stamp = self._stamp
        if stamp is not None:
            name = stamp[0]
            for key, _ in headers:
                if key.lower() == name:
                    break
            else:
                # A new list and message: the app may send the same header list with every response.
                headers = [*headers, stamp]
                message = {**message, "headers": headers}
        self.response_headers = headers
        return message


def _payload(message: Message) -> bytes:
    data = message.get("body") or message.get("bytes")
    if data is not None:
        return bytes(data)
    text = message.get("text")
    return text.encode() if text else b""


def _keep(buffer: bytearray, data: bytes, limit: int) -> None:
    if len(buffer) < limit:
        buffer += data[: limit - len(buffer)]


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


def _forwarded_for(scope: Scope) -> str | None:
    # Each X-Forwarded-For line continues the list of the one before.
    headers = scope.get("headers") or ()
    hops = [value.decode("latin-1") for name, value in headers if name == b"x-forwarded-for"]
    return ", ".join(hops) or None


def scope_user(scope: MutableMapping[str, Any]) -> str | None:
    """The default user resolver: the authenticated `scope["user"]` (what Starlette's
    AuthenticationMiddleware sets, and `request.user` returns) by its identity, else its display name."""
    user = scope.get("user")
    if user is None or isinstance(user, str):
        return user or None
    if not getattr(user, "is_authenticated", True):
        return None
    for attribute in ("identity", "display_name"):
        try:
            value = getattr(user, attribute, None)
        except NotImplementedError:  # Starlette's BaseUser leaves `identity` to subclasses
            continue
        if value:
            return str(value)
    return None


class AuditMiddleware:
    """Audits each HTTP request and websocket connection of the app it wraps.

    Give it either a `recorder` (to read its stats, or share it with gRPC interceptors) or the
    `config`, `context` and `emit` to build one with; see AuditRecorder. Raises ValueError for both,
    and for a config option it cannot use.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: AuditMiddlewareConfig | None = None,
        *,
        context: AuditContext | None = None,
        emit: Emit | None = None,
        recorder: AuditRecorder | None = None,
    ) -> None:
        self.app = app
        self.recorder = given_or_built("AuditMiddleware", recorder, config, context, emit)
        settings = self.recorder.settings
        self.header = settings.request_id_header.encode("latin-1")
        self._resolver = settings.user_resolver
        self._routes = RouteTemplates()

    @property
    def stats(self) -> MiddlewareStats:
        return self.recorder.stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange: _Exchange | None = None
        try:
            kind = scope["type"]
            if kind in ("http", "websocket"):
                path = scope["path"]
                if not self.recorder.excluded(path):
                    exchange = _Exchange(self, scope, receive, send, path)
        except Exception as exc:  # noqa: BLE001 - a scope it cannot read goes through unaudited, counted
            self.recorder.failed(exc)
        if exchange is None:
            await self.app(scope, receive, send)
            return
        token = set_current(exchange.ids)
        error: BaseException | None = None
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except BaseException as exc:
            error = exc
            raise
        finally:
            reset_current(token)
            finished = exchange.finished
            if finished is None:
                self.conclude(exchange, error)
            elif error is not None:
                self._failed_after_response(exchange, error, finished)

    def conclude(self, exchange: _Exchange, error: BaseException | None) -> None:
        """Build and send the request's event: when its response is complete, or when the app is done
        without completing one. Never raises: auditing must not fail the request."""
        recorder = self.recorder
        try:
            end = exchange.finished if exchange.finished is not None else perf_counter()
            duration_ms = (end - exchange.started) * 1000
            scope = exchange.scope
            # No response started: the server answers 500 for an app that raised or returned without
            # one, 403 for a websocket handshake the app neither accepted nor refused.
            status = exchange.status or (403 if exchange.websocket and error is None else 500)
            signals: list[Signal] = []
            if recorder.settings.detect_anomalies:
                query = scope.get("query_string") or b""
                signal = scan_request(exchange.path, scope.get("raw_path") or b"", query)
                if signal is not None:
                    signals.append(signal)
            if recorder.skip(status, duration_ms, error, signals):
                return
            exchange.event = event = self._event(exchange, status, error, duration_ms)
            recorder.record(event, signals)
        except Exception as exc:  # noqa: BLE001 - counted and reported once
            recorder.failed(exc)

    def _failed_after_response(self, exchange: _Exchange, error: BaseException, finished: float) -> None:
        """The app raised after its response was complete (`finished`): background work failed. The
        request's event stays as it was sent (or sampled out); the failure is an event of its own."""
        try:
            event = exchange.event
            if event is None:  # sampled out: the failure still needs the request's facts
                duration_ms = (finished - exchange.started) * 1000
                event = self._event(exchange, exchange.status or 500, None, duration_ms)
            self.recorder.record_after_response(event, error, (perf_counter() - finished) * 1000)
        except Exception as exc:  # noqa: BLE001 - counted and reported once
            self.recorder.failed(exc)

    def _event(
        self, exchange: _Exchange, status: int, error: BaseException | None, duration_ms: float
    ) -> AuditEvent:
        scope = exchange.scope
        recorder = self.recorder
        settings = recorder.settings
        path = exchange.path
        details: dict[str, Any] = {"path": path}
        if settings.log_headers:
            details["request_headers"] = http_headers(scope.get("headers") or [], settings.redacted)
            if settings.log_responses and exchange.response_headers is not None:
                details["response_headers"] = http_headers(exchange.response_headers, settings.redacted)
        if exchange.close_code is not None:
            details["close_code"] = exchange.close_code
        sensitive: dict[str, Any] = {}
        if exchange.request_body is not None:
            sensitive["request_body"] = excerpt(
                exchange.request_body, exchange.request_size, settings.body_limit
            )
        if exchange.response_body is not None:
            sensitive["response_body"] = excerpt(
                exchange.response_body, exchange.response_size, settings.body_limit
            )
        declared = exchange.headers.get(b"content-length")
        client = scope.get("client")
        peer = client[0] if client else None
        if settings.trusted_proxies:
            peer = recorder.client_address.resolve(peer, _forwarded_for(scope))
        # A user named with set_audit_user wins; else the resolver. The default one reads scope["user"];
        # most requests have none, so it is not even called.
        user_id = exchange.user.user_id
        if user_id is None:
            resolver = self._resolver
            if resolver is None:
                user_id = recorder.resolve(scope_user, scope) if "user" in scope else None
            else:
                user_id = recorder.resolve(resolver, scope)
        return recorder.request_event(
            event_id=exchange.event_id,
            ids=exchange.ids,
            method="WEBSOCKET" if exchange.websocket else scope["method"],
            endpoint=self._routes.template(scope, path, exchange.root_path) or path,
            status_code=status,
            error=error,
            duration_ms=duration_ms,
            details=details,
            sensitive=sensitive,
            request_size=int(declared) if declared and declared.isdigit() else exchange.request_size,
            response_size=exchange.response_size,
            source_ip=peer,
            user_agent=_text(exchange.headers.get(b"user-agent")),
            user_id=user_id,
        )


def setup_fastapi_audit_middleware(
    app: Any,
    config: AuditMiddlewareConfig | None = None,
    *,
    context: AuditContext | None = None,
    emit: Emit | None = None,
) -> AuditRecorder:
    """Add AuditMiddleware to a FastAPI (or Starlette) app before it starts; returns its recorder.

    It becomes the outermost of the app's own middleware, so its durations include theirs, and it runs
    inside Starlette's error handling, so it sees an unhandled exception before the 500 is sent.
    """
    recorder = AuditRecorder(config, context=context, emit=emit)
    app.add_middleware(AuditMiddleware, recorder=recorder)
    return recorder
