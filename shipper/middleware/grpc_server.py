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
from them. The status is the one the client got, whatever the handler (sync or async, a sync one on
an aio server too): DEADLINE_EXCEEDED when the deadline passed first, CANCELLED when the client
cancelled, else the code the handler aborted with or set, OK when it returned, UNKNOWN when it
raised. Also recorded: the peer (`details["peer"]`, its address as `source_ip`), the user agent, the
duration, metadata with `log_headers` (redacted like HTTP headers), and the user id: the one the
handler names with `set_audit_user`, else what `grpc_user_resolver` returns, given the ServicerContext
as the call starts (none by default: caller metadata is never believed unless the service says so,
with `metadata_user`).
Message sizes are not recorded.

Correlation ids come from the request id metadata and `traceparent` as for HTTP, are in effect while
the handler runs (for a streaming response, while each message is produced), and go back to the
client as trailing metadata (unless the handler set that key itself).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, TypeAlias

import grpc
import grpc.aio

from shipper.config import AuditContext
from shipper.correlation import reset_current, set_current
from shipper.dispatch import Emit
from shipper.event import new_event_id
from shipper.middleware.clientip import grpc_peer_address
from shipper.middleware.config import AuditMiddlewareConfig
from shipper.middleware.ids import incoming_ids
from shipper.middleware.recorder import AuditRecorder, MiddlewareStats, given_or_built
from shipper.middleware.redaction import grpc_metadata
from shipper.middleware.user import UserSlot, request_ids

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
# A call cancelled this close to its deadline (by the server's clock) was cancelled by it: the server's
# deadline falls a little after the client's, which sends what remains of its timeout rounded up (by up
# to 1%), and the client's cancellation takes a moment to arrive.
_DEADLINE_SLACK_S = 0.05
_DEADLINE_SLACK_SHARE = 0.02
# The exceptions that mean the client went away, not that the handler failed.
_GONE = (GeneratorExit, asyncio.CancelledError)

Metadata = Collection[tuple[str, str | bytes]]
# A string: the stubs make the class generic, the runtime class is not subscriptable.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def metadata_user(context: grpc.ServicerContext | grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """A gRPC user resolver reading the `x-user-id` invocation metadata: any caller can set it, so give it
    as `grpc_user_resolver` only where a gateway that authenticates callers sets it and strips the
    callers' own."""
    metadata: Metadata = context.invocation_metadata() or ()
    return _first(metadata, "x-user-id")


def _first(metadata: Metadata, key: str) -> str | None:
    for name, value in metadata:
        if name == key and isinstance(value, str):
            return value
    return None


class _SyncContextOnAio:
    """The context a sync handler on an aio server is given: gRPC's own, remembering the code the handler
    aborts with or sets. gRPC's context for such handlers cannot report it (it has no `code()`, and its
    abort raises an AbortError that does not say the code); everything else is gRPC's."""

    __slots__ = ("_context", "chosen_code")

    def __init__(self, context: Any) -> None:
        self._context = context
        self.chosen_code: Code | None = None

    def abort(self, code: Code, *args: Any, **kwargs: Any) -> None:
        self.chosen_code = code
        self._context.abort(code, *args, **kwargs)

    def set_code(self, code: Code) -> None:
        self.chosen_code = code
        self._context.set_code(code)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class _TaskEnd:
    """The end of an aio server's task for a call whose handler runs in a thread of the server's pool.

    The handler lookup (which runs in the task, in the event loop) subscribes to it, before the handler
    starts; the call attaches itself as the handler starts (in its thread). Whichever comes second
    decides: a call attached before the task was done is recorded when it is (_Call.task_done); a task
    done first was cancelled, and the call records itself so when the handler ends."""

    __slots__ = ("_call", "_done", "_lock", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self._call: _Call | None = None
        self._done = False
        self._lock = threading.Lock()
        task.add_done_callback(self._task_done)

    def attach(self, call: _Call) -> bool:
        """Attach the call; whether the task was done already."""
        with self._lock:
            self._call = call
            return self._done

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        with self._lock:
            self._done = True
            call = self._call
        if call is not None:
            call.task_done(task)


class _Call:
    """One call: what it is, read as it starts, and how it ended, decided once it has.

    Everything the event needs from the context is read here, before the handler runs, in the thread or
    task that runs it: once a call is over gRPC may free it, and a sync handler on an aio server outlives
    a call that was cancelled or passed its deadline (reading the peer after it returned crashed the
    process); where it does not crash, a cancelled call's peer reads as "". Afterwards only Python state
    is read: the code the handler set, whether the call is still active, its trailing metadata.

    On a `grpc.server` the call is recorded as the handler ends, cancelled if the call is no longer
    active then. On an aio server gRPC runs each call in a task, which it cancels when the client went
    away or the deadline passed before the status was sent: that is then what the client got. The call
    is recorded when that task is done (its done callback), whether or not a sync handler is still
    running in its thread. The server cannot tell a deadline from the client's own cancellation, so a
    cancellation near the deadline (see _DEADLINE_SLACK_S) counts as the deadline.
    """

    __slots__ = (
        "_audit",
        "_cut_short",
        "_ended",
        "_followed",
        "_slack",
        "context",
        "deadline",
        "event_id",
        "ids",
        "metadata",
        "method",
        "peer",
        "started",
        "user",
        "user_id",
    )

    def __init__(
        self,
        audit: _Auditing,
        method: str,
        context: Any,
        task: asyncio.Task[Any] | _TaskEnd | None,
        *,
        sync_on_aio: bool,
    ) -> None:
        """`task`: the aio server's task for the call, if known (this runs in it), or its _TaskEnd (this
        runs in a thread of the server's pool, as the handler does); `sync_on_aio`: the handler is a sync
        one on an aio server, to be given `self.context`."""
        self.started = time.perf_counter()
        self._audit = audit
        self.method = method
        # What the handler is given. The call is read from gRPC's own context.
        self.context = _SyncContextOnAio(context) if sync_on_aio else context
        recorder = audit.recorder
        self.metadata: Metadata = context.invocation_metadata() or ()
        header = recorder.settings.request_id_header
        self.event_id = new_event_id()
        traceparent = _first(self.metadata, "traceparent")
        self.user = UserSlot()
        self.ids = request_ids(
            incoming_ids(_first(self.metadata, header), traceparent, self.event_id), self.event_id, self.user
        )
        resolver = audit.user_resolver
        if isinstance(task, _TaskEnd) and task.task.cancelling():
            # Cancelled before its handler started: gRPC frees such a call as soon as its task ends, so
            # neither the peer nor the user (a resolver may read auth_context) is read.
            self.peer, self.user_id = "", None
        else:
            self.peer = context.peer()
            self.user_id = None if resolver is None else recorder.resolve(resolver, context)
        # None (aio) or about 9e18 s (grpc.server) when the client set no deadline.
        remaining: float | None = context.time_remaining()
        self.deadline = math.inf if remaining is None else self.started + remaining
        self._slack = 0.0 if remaining is None else _DEADLINE_SLACK_S + _DEADLINE_SLACK_SHARE * remaining
        self._ended: tuple[BaseException | None, Code | None, float] | None = None
        # Set now as well as at the end: the aio server sends an abort's status at once, with the
        # trailing metadata set so far.
        context.set_trailing_metadata(((header, self.ids.correlation_id),))
        # Whether the task was done before the handler started: gRPC had cancelled the call.
        self._cut_short = False
        if isinstance(task, _TaskEnd):
            self._cut_short = task.attach(self)
        elif task is not None:
            task.add_done_callback(self.task_done)
        self._followed = task is not None and not self._cut_short

    def finish(self, error: BaseException | None) -> None:
        """The handler ended (returned, raised, or its stream was closed): return the request id to the
        client, and record the call now, or keep how it ended for when its task is done. Never raises
        into the server."""
        try:
            ended = time.perf_counter()
            self._return_request_id()
            code = self._code()
            if self._followed:  # recorded when the task is done
                self._ended = (error, code, ended)
                return
            gone = self._cut_short or isinstance(error, _GONE)
            if not self._audit.aio:
                gone = gone or not self.context.is_active()
            # On an aio server with the task unknown (a sync handler, see _Auditing.wrap_found), a
            # client's cancellation goes unseen; a deadline is told by the clock.
            self._record(error, code, gone, ended)
        except Exception as exc:  # noqa: BLE001 - auditing must never fail the call
            self._audit.recorder.failed(exc)

    def task_done(self, task: asyncio.Task[Any]) -> None:
        """The call's task is done (see the class): record the call."""
        try:
            if task.cancelling():  # gRPC cancelled the call: the client went away or its deadline passed
                self._record(None, None, True, time.perf_counter())
            elif self._ended is not None:
                error, code, ended = self._ended
                self._record(error, code, False, ended)
            else:
                # gRPC ended the call with the handler's stream unfinished: it sent the code the handler
                # aborted with (older grpcio returns from a sync handler's abort() on an aio server, and
                # the handler goes on), or failed the call.
                self._record(None, self._code() or Code.UNKNOWN, False, time.perf_counter())
        except Exception as exc:  # noqa: BLE001 - auditing must never fail the server's loop
            self._audit.recorder.failed(exc)

    def _code(self) -> Code | None:
        """The code the handler set or aborted with, if any."""
        context = self.context
        return context.chosen_code if isinstance(context, _SyncContextOnAio) else context.code()

    def _return_request_id(self) -> None:
        # A sync handler on an aio server cannot have read them: what was set at the start stands.
        if isinstance(self.context, _SyncContextOnAio):
            return
        read = self.context.trailing_metadata
        header = self._audit.recorder.settings.request_id_header
        trailing = tuple(read() or ())
        if not any(key == header for key, _ in trailing):
            self.context.set_trailing_metadata((*trailing, (header, self.ids.correlation_id)))

    def _record(self, error: BaseException | None, code: Code | None, gone: bool, ended: float) -> None:
        """Record the call with the status its client got: DEADLINE_EXCEEDED when it ended past its
        deadline, or was cancelled near it; CANCELLED when it was cancelled (`gone`) otherwise; else the
        code the handler set or aborted with, OK when it returned, UNKNOWN when it raised."""
        recorder = self._audit.recorder
        settings = recorder.settings
        left = self.deadline - ended
        if left <= 0 or (gone and left <= self._slack):
            code, error = Code.DEADLINE_EXCEEDED, None
        elif gone:
            code, error = Code.CANCELLED, None
        elif error is None:
            code = code or Code.OK
        elif code is None or code is Code.OK:
            code = Code.UNKNOWN
        else:
            error = None  # aborted (or set a code, then raised): the client got that code
        duration_ms = (ended - self.started) * 1000
        status = HTTP_STATUS[code]
        if recorder.skip(status, duration_ms, error, []):
            return
        details: dict[str, Any] = {"grpc_status": code.name, "peer": self.peer}
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
            source_ip=recorder.client_address.resolve(grpc_peer_address(self.peer), forwarded_for),
            user_agent=_first(self.metadata, "user-agent"),
            user_id=self.user.user_id or self.user_id,
        )
        recorder.record(event, [])


class _Auditing:
    """Wraps method handlers so that each call through them is recorded."""

    def __init__(self, recorder: AuditRecorder, aio: bool) -> None:
        self.recorder = recorder
        self.aio = aio
        self.user_resolver = recorder.settings.grpc_user_resolver
        # method -> (handler, its wrapper, its behaviour to bind to each call's task, if any). Interceptors
        # see every call, but a server hands them the same handler for a method each time: it is
        # inspected and wrapped once, not on every call.
        self._wrapped: dict[str, tuple[Handler, Handler, Callable[..., Any] | None]] = {}

    def begin(
        self,
        method: str,
        context: Any,
        task: asyncio.Task[Any] | _TaskEnd | None = None,
        sync: bool = False,
    ) -> _Call | None:
        """A call starting (see _Call; `sync`: its handler is a plain function), or None when its method
        is excluded (which is counted) or reading it failed."""
        if self.recorder.excluded(method):
            return None
        try:
            return _Call(self, method, context, task, sync_on_aio=sync and self.aio)
        except Exception as exc:  # noqa: BLE001 - auditing must never fail the call
            self.recorder.failed(exc)
            return None

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
        """`wrap` for a handler a lookup returned, once per handler; None (no such method) stays None.

        On an aio server, a sync handler that answers with one message runs in a thread of the server's
        pool, where the call's task cannot be found; the lookup runs in that task, so the wrapper given
        for such a handler is bound to it, for this call. (Handlers added with
        add_registered_method_handlers after setup_grpc_audit_interceptor go without.)"""
        if handler is None:
            return None
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            wrapped = self.wrap(handler, method)
            cached = (handler, wrapped, self._in_pool(wrapped))
            if len(self._wrapped) >= _MAX_CACHED_HANDLERS:  # methods made up at run time: bounded memory
                self._wrapped.clear()
            self._wrapped[method] = cached
        _, wrapped, behavior = cached
        if behavior is None:
            return wrapped
        task = asyncio.current_task()
        if task is None:  # not looked up in a task: the call goes without
            return wrapped
        factory = (
            grpc.stream_unary_rpc_method_handler
            if wrapped.request_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        return factory(
            functools.partial(behavior, task=_TaskEnd(task)),
            request_deserializer=wrapped.request_deserializer,
            response_serializer=wrapped.response_serializer,
        )

    def _in_pool(self, wrapped: Handler) -> Callable[..., Any] | None:
        """On an aio server, the behaviour of a wrapped sync handler that answers once; else None."""
        if not self.aio or wrapped.response_streaming:
            return None
        behavior = wrapped.stream_unary if wrapped.request_streaming else wrapped.unary_unary
        return None if behavior is None or _is_async(behavior) else behavior

    def _behavior(
        self,
        method: str,
        inner: Callable[..., Any],
        response_streaming: bool,
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

    def _sync_unary(self, method: str, inner: Callable[[Any, Any], Any]) -> Callable[..., Any]:
        # `task`: the end of the aio server's task for the call, bound by wrap_found.
        def behavior(request: Any, context: Any, task: _TaskEnd | None = None) -> Any:
            call = self.begin(method, context, task, sync=True)
            if call is None:
                return inner(request, context)
            token = set_current(call.ids)
            error: BaseException | None = None
            try:
                return inner(request, call.context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                reset_current(token)
                call.finish(error)

        return behavior

    def _sync_stream(self, method: str, inner: Callable[[Any, Any], Iterable[Any]]) -> Callable[..., Any]:
        aio = self.aio

        def behavior(request: Any, context: Any) -> Iterable[Any]:
            # On an aio server this runs in the call's task; the responses are then produced in the pool.
            task = asyncio.current_task() if aio else None
            call = self.begin(method, context, task, sync=True)
            if call is None:
                return inner(request, context)
            token = set_current(call.ids)
            try:
                responses = iter(inner(request, call.context))
            except BaseException as exc:
                call.finish(exc)
                raise
            finally:
                reset_current(token)
            return _stream(call, responses)

        return behavior

    def _async_unary(self, method: str, inner: Callable[[Any, Any], Awaitable[Any]]) -> Callable[..., Any]:
        async def behavior(request: Any, context: Any) -> Any:
            task = asyncio.current_task()
            call = self.begin(method, context, task)
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
            task = asyncio.current_task()
            call = self.begin(method, context, task)
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


def _is_async(handler: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.isasyncgenfunction(handler)


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
        self._auditing = _Auditing(self.recorder, aio=False)

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
        self._auditing = _Auditing(self.recorder, aio=True)

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
    generated by grpcio-tools 1.62 and later use, where grpcio has it). Call it BEFORE adding any
    servicer: handlers added earlier are not audited. Passing the interceptor to
    `grpc.server(interceptors=[...])` has no such order to keep and is the recommended way. Raises
    ValueError when the server is already set up.
    """
    if getattr(server, "_auditship_recorder", None) is not None:
        raise ValueError("setup_grpc_audit_interceptor: server: already set up for auditing")
    recorder = given_or_built("setup_grpc_audit_interceptor", recorder, config, context, emit)
    auditing = _Auditing(recorder, aio=isinstance(server, grpc.aio.Server))
    add_generic = server.add_generic_rpc_handlers

    def add_generic_rpc_handlers(handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        add_generic([_AuditedGenericHandler(handler, auditing) for handler in handlers])

    # Instance attributes shadow the methods for this server only.
    server.add_generic_rpc_handlers = add_generic_rpc_handlers  # type: ignore[method-assign,assignment]
    add_registered = getattr(server, "add_registered_method_handlers", None)  # grpcio 1.62 and later
    if add_registered is not None:

        def add_registered_method_handlers(service: str, handlers: Mapping[str, Handler]) -> None:
            add_registered(
                service,
                {name: auditing.wrap(handler, f"/{service}/{name}") for name, handler in handlers.items()},
            )

        server.add_registered_method_handlers = add_registered_method_handlers  # type: ignore[method-assign,assignment]
    server._auditship_recorder = recorder  # type: ignore[union-attr]
    return recorder
