"""gRPC: audit interceptors for `grpc.server` and `grpc.aio.server`, and `setup_grpc_audit_interceptor`.

    recorder = AuditRecorder(config, context=AuditContext(service_name="users"))
    server = grpc.server(executor, interceptors=[AuditServerInterceptor(recorder=recorder)])
    server = grpc.aio.server(interceptors=[AioAuditServerInterceptor(recorder=recorder)])

    # A server created elsewhere: set up BEFORE adding servicers (see setup_grpc_audit_interceptor).
    server = grpc.server(executor)
    recorder = setup_grpc_audit_interceptor(server, config)
    add_UsersServicer_to_server(UsersServicer(), server)

Each call of any kind (unary or streaming either way) yields an API_REQUEST event: method GRPC,
`endpoint` the full method name (`/pkg.Users/Get`), the gRPC status name in `details["grpc_status"]`
and its HTTP equivalent in `status_code` (Google's mapping: NOT_FOUND 404, UNAUTHENTICATED 401,
PERMISSION_DENIED 403, RESOURCE_EXHAUSTED 429, UNKNOWN 500...), so that one query finds failures
across HTTP and gRPC and the recorder derives AUTH_FAILURE, ACCESS_DENIED and RATE_LIMIT_EXCEEDED
from them. The status is OK when the handler returned, the code it aborted with (or set) when it
did, UNKNOWN when it raised, CANCELLED when the client went away. Also recorded: the peer
(`details["peer"]`, its address as `source_ip`), the user agent, the duration, metadata with
`log_headers` (redacted like HTTP headers), and the user id from `grpc_user_resolver`, which is
given the ServicerContext (the default reads the `x-user-id` metadata, which only a gateway that
authenticates callers should be trusted to set). Message sizes are not recorded.

Correlation ids come from the request id metadata and `traceparent` as for HTTP, are in effect while
the handler runs (for a streaming response, while each message is produced), and go back to the
client as trailing metadata (unless the handler set that key itself).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, TypeAlias

import grpc
import grpc.aio

from shipper.config import AuditContext
from shipper.correlation import reset_current, set_current
from shipper.event import new_event_id
from shipper.logger import Emit
from shipper.middleware.clientip import grpc_peer_address
from shipper.middleware.config import AuditMiddlewareConfig
from shipper.middleware.ids import incoming_ids
from shipper.middleware.recorder import AuditRecorder, MiddlewareStats, given_or_built
from shipper.middleware.redaction import grpc_metadata

Code = grpc.StatusCode

# https://github.com/googleapis/googleapis/blob/master/google/rpc/code.proto, code by code.
HTTP_STATUS = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}
_MAX_CACHED_HANDLERS = 4096
# The exceptions that mean the client went away, not that the handler failed.
_GONE = (GeneratorExit, asyncio.CancelledError)

Metadata = Collection[tuple[str, str | bytes]]
# A string: the stubs make the class generic, the runtime class is not subscriptable.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def metadata_user(context: grpc.ServicerContext | grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The default gRPC user resolver: the `x-user-id` invocation metadata."""
    metadata: Metadata = context.invocation_metadata() or ()
    return _first(metadata, "x-user-id")


def _first(metadata: Metadata, key: str) -> str | None:
    for name, value in metadata:
        if name == key and isinstance(value, str):
            return value
    return None


class _Call:
    """One call in flight: what was known when it started; `finish` records it."""

    __slots__ = ("_audit", "context", "event_id", "ids", "metadata", "method", "started")

    def __init__(self, audit: _Auditing, method: str, context: Any) -> None:
        self.started = time.perf_counter()
        self._audit = audit
        self.method = method
        self.context = context
        self.metadata: Metadata = context.invocation_metadata() or ()
        header = audit.recorder.settings.request_id_header
        self.event_id = new_event_id()
        traceparent = _first(self.metadata, "traceparent")
        self.ids = incoming_ids(_first(self.metadata, header), traceparent, self.event_id)
        # Set now as well as at the end: the aio server sends an abort's status at once, with the
        # trailing metadata set so far.
        context.set_trailing_metadata(((header, self.ids.correlation_id),))

    def finish(self, error: BaseException | None) -> None:
        """Return the request id to the client and record the call; never raises into the server."""
        try:
            self._return_request_id()
            self._record(error)
        except Exception as exc:  # noqa: BLE001 - auditing must never fail the call
            self._audit.recorder.failed(exc)

    def _return_request_id(self) -> None:
        read = getattr(self.context, "trailing_metadata", None)
        if read is None:  # the context of a sync handler on an aio server: what was set at the start stands
            return
        header = self._audit.recorder.settings.request_id_header
        trailing = tuple(read() or ())
        if not any(key == header for key, _ in trailing):
            self.context.set_trailing_metadata((*trailing, (header, self.ids.correlation_id)))

    def _record(self, error: BaseException | None) -> None:
        recorder = self._audit.recorder
        settings = recorder.settings
        # None unless the handler set a code or aborted. The context of a sync handler on an aio server
        # cannot tell: its calls are recorded as if the handler never set one.
        read_code = getattr(self.context, "code", None)
        code: Code | None = read_code() if read_code is not None else None
        if error is None:
            code = code or Code.OK
        elif isinstance(error, _GONE):
            code, error = Code.CANCELLED, None
        elif code is not None and code is not Code.OK:
            error = None  # aborted (or set_code): the handler chose the status
        else:
            code = Code.UNKNOWN
        duration_ms = (time.perf_counter() - self.started) * 1000
        status = HTTP_STATUS[code]
        if recorder.skip(status, duration_ms, error, []):
            return
        peer = self.context.peer()
        details: dict[str, Any] = {"grpc_status": code.name, "peer": peer}
        if settings.log_headers:
            details["metadata"] = grpc_metadata(self.metadata, settings.redacted)
        forwarded_for = _first(self.metadata, "x-forwarded-for") if settings.trusted_proxies else None
        event = recorder.request_event(
            event_id=self.event_id,
            ids=self.ids,
            method="GRPC",
            endpoint=self.method,
            status_code=status,
            error=error,
            duration_ms=duration_ms,
            details=details,
            source_ip=recorder.client_address.resolve(grpc_peer_address(peer), forwarded_for),
            user_agent=_first(self.metadata, "user-agent"),
            user_id=recorder.resolve(self._audit.user_resolver, self.context),
        )
        recorder.record(event, [])


class _Auditing:
    """Wraps method handlers so that each call through them is recorded."""

    def __init__(self, recorder: AuditRecorder) -> None:
        self.recorder = recorder
        self.user_resolver = recorder.settings.grpc_user_resolver or metadata_user
        # method -> (handler, its wrapper). Interceptors see every call, but a server hands them the same
        # handler for a method each time: it is inspected and wrapped once, not on every call.
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def begin(self, method: str, context: Any) -> _Call | None:
        """A call starting, or None when its method is excluded (which is counted)."""
        return None if self.recorder.excluded(method) else _Call(self, method, context)

    def wrap(self, handler: Handler, method: str) -> Handler:
        """`handler` with each of its calls recorded, as a call of `method`."""
        request_streaming, response_streaming = handler.request_streaming, handler.response_streaming
        if request_streaming and response_streaming:
            factory, inner = grpc.stream_stream_rpc_method_handler, handler.stream_stream
        elif request_streaming:
            factory, inner = grpc.stream_unary_rpc_method_handler, handler.stream_unary
        elif response_streaming:
            factory, inner = grpc.unary_stream_rpc_method_handler, handler.unary_stream
        else:
            factory, inner = grpc.unary_unary_rpc_method_handler, handler.unary_unary
        if inner is None:  # a handler without the behaviour its flags name: gRPC itself will refuse it
            return handler
        return factory(
            self._behavior(method, inner, response_streaming),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def wrap_found(self, handler: Handler | None, method: str) -> Handler | None:
        """`wrap` for a handler a lookup returned, once per handler; None (no such method) stays None."""
        if handler is None:
            return None
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.wrap(handler, method)
        if len(self._wrapped) >= _MAX_CACHED_HANDLERS:  # methods made up at run time: bounded memory
            self._wrapped.clear()
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _behavior(
        self, method: str, inner: Callable[..., Any], response_streaming: bool
    ) -> Callable[..., Any]:
        # gRPC's aio server tells the handler styles apart by function type, so the wrapper must be of
        # the same type as what it wraps: async generator, coroutine (also the streaming style that
        # uses context.write), or a plain function (sync servers, and sync handlers on aio servers).
        if inspect.isasyncgenfunction(inner):
            return self._async_stream(method, inner)
        if inspect.iscoroutinefunction(inner):
            return self._async_unary(method, inner)
        if response_streaming:
            return self._sync_stream(method, inner)
        return self._sync_unary(method, inner)

    def _sync_unary(self, method: str, inner: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def behavior(request: Any, context: Any) -> Any:
            call = self.begin(method, context)
            if call is None:
                return inner(request, context)
            token = set_current(call.ids)
            error: BaseException | None = None
            try:
                return inner(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                reset_current(token)
                call.finish(error)

        return behavior

    def _sync_stream(self, method: str, inner: Callable[[Any, Any], Iterable[Any]]) -> Callable[..., Any]:
        def behavior(request: Any, context: Any) -> Iterable[Any]:
            call = self.begin(method, context)
            if call is None:
                return inner(request, context)
            token = set_current(call.ids)
            try:
                responses = iter(inner(request, context))
            except BaseException as exc:
                call.finish(exc)
                raise
            finally:
                reset_current(token)
            return _stream(call, responses)

        return behavior

    def _async_unary(self, method: str, inner: Callable[[Any, Any], Awaitable[Any]]) -> Callable[..., Any]:
        async def behavior(request: Any, context: Any) -> Any:
            call = self.begin(method, context)
            if call is None:
                return await inner(request, context)
            token = set_current(call.ids)
            error: BaseException | None = None
            try:
                return await inner(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                reset_current(token)
                call.finish(error)

        return behavior

    def _async_stream(
        self, method: str, inner: Callable[[Any, Any], AsyncIterator[Any]]
    ) -> Callable[..., Any]:
        async def behavior(request: Any, context: Any) -> AsyncIterator[Any]:
            call = self.begin(method, context)
            responses = inner(request, context)
            if call is None:
                async for response in responses:
                    yield response
                return
            error: BaseException | None = None
            try:
                while True:
                    # The ids are set only while the handler runs: the async generator's body runs in
                    # whichever context drives it, and resetting must happen in the one that set.
                    token = set_current(call.ids)
                    try:
                        response = await anext(responses)
                    except StopAsyncIteration:
                        break
                    finally:
                        reset_current(token)
                    yield response
            except BaseException as exc:
                error = exc
                raise
            finally:
                call.finish(error)

        return behavior


def _stream(call: _Call, responses: Iterator[Any]) -> Iterator[Any]:
    """Yield the handler's responses, producing each with the call's ids in effect; record at the end."""
    error: BaseException | None = None
    try:
        while True:
            token = set_current(call.ids)
            try:
                response = next(responses)
            except StopIteration:
                break
            finally:
                reset_current(token)
            yield response
    except BaseException as exc:
        error = exc
        raise
    finally:
        call.finish(error)


class AuditServerInterceptor(grpc.ServerInterceptor):
    """Audits every call of a `grpc.server`: `grpc.server(executor, interceptors=[...])`.

    Give it a `recorder`, or the `config`, `context` and `emit` to build one (see AuditRecorder).
    """

    def __init__(
        self,
        config: AuditMiddlewareConfig | None = None,
        *,
        context: AuditContext | None = None,
        emit: Emit | None = None,
        recorder: AuditRecorder | None = None,
    ) -> None:
        self.recorder = given_or_built("AuditServerInterceptor", recorder, config, context, emit)
        self._auditing = _Auditing(self.recorder)

    @property
    def stats(self) -> MiddlewareStats:
        return self.recorder.stats

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        return self._auditing.wrap_found(continuation(handler_call_details), handler_call_details.method)


class AioAuditServerInterceptor(grpc.aio.ServerInterceptor):
    """Audits every call of a `grpc.aio.server`: `grpc.aio.server(interceptors=[...])`.

    Give it a `recorder`, or the `config`, `context` and `emit` to build one (see AuditRecorder).
    """

    def __init__(
        self,
        config: AuditMiddlewareConfig | None = None,
        *,
        context: AuditContext | None = None,
        emit: Emit | None = None,
        recorder: AuditRecorder | None = None,
    ) -> None:
        self.recorder = given_or_built("AioAuditServerInterceptor", recorder, config, context, emit)
        self._auditing = _Auditing(self.recorder)

    @property
    def stats(self) -> MiddlewareStats:
        return self.recorder.stats

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        return self._auditing.wrap_found(handler, handler_call_details.method)


class _AuditedGenericHandler(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler, auditing: _Auditing) -> None:
        self._inner = inner
        self._auditing = auditing

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        handler = self._inner.service(handler_call_details)
        return self._auditing.wrap_found(handler, handler_call_details.method)


def setup_grpc_audit_interceptor(
    server: grpc.Server | grpc.aio.Server,
    config: AuditMiddlewareConfig | None = None,
    *,
    context: AuditContext | None = None,
    emit: Emit | None = None,
    recorder: AuditRecorder | None = None,
) -> AuditRecorder:
    """Audit the calls of a server that was created without the interceptor; returns its recorder.

    Interceptors can only be given to `grpc.server(...)`, so this wraps the server's two ways of adding
    handlers instead (`add_generic_rpc_handlers`, and `add_registered_method_handlers`, which stubs
    generated by grpcio-tools 1.62 and later use). Call it BEFORE adding any servicer: handlers added
    earlier are not audited. Passing the interceptor to `grpc.server(interceptors=[...])` has no such
    order to keep and is the recommended way. Raises ValueError when the server is already set up.
    """
    if getattr(server, "_auditship_recorder", None) is not None:
        raise ValueError("setup_grpc_audit_interceptor: server: already set up for auditing")
    recorder = given_or_built("setup_grpc_audit_interceptor", recorder, config, context, emit)
    auditing = _Auditing(recorder)
    add_generic = server.add_generic_rpc_handlers
    add_registered = server.add_registered_method_handlers

    def add_generic_rpc_handlers(handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        add_generic([_AuditedGenericHandler(handler, auditing) for handler in handlers])

    def add_registered_method_handlers(service: str, handlers: Mapping[str, Handler]) -> None:
        add_registered(
            service,
            {name: auditing.wrap(handler, f"/{service}/{name}") for name, handler in handlers.items()},
        )

    # Instance attributes shadow the methods for this server only.
    server.add_generic_rpc_handlers = add_generic_rpc_handlers  # type: ignore[method-assign,assignment]
    server.add_registered_method_handlers = add_registered_method_handlers  # type: ignore[method-assign,assignment]
    server._auditship_recorder = recorder  # type: ignore[union-attr]
    return recorder
