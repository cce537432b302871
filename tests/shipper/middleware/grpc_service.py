"""A small gRPC service for the interceptor tests, with no protobuf: bytes in, bytes out, through gRPC's
generic handlers, in a sync and an aio flavour; and a way to serve either on 127.0.0.1.

`/audit.test.Users/Get` answers b"ok" and logs a DATA_READ; other requests make it abort, set a code or
raise (see OUTCOMES). `List` streams three messages, logging one DATA_READ each; `Upload` joins what it
is sent; `Chat` echoes each message. `/audit.test.Registered/Ping` is added as a registered method.

`/audit.test.Ends/<kind>` (Ends) has a method of each kind of call, ending as its (first) request says
(see ENDINGS): returning, aborting, setting a code, raising, running past the call's deadline or until
the client cancels; `start_call` and `client_code` call them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent import futures
from contextlib import contextmanager, suppress
from typing import Any

import grpc
import grpc.aio

from shipper.builder import AuditEventBuilder
from shipper.config import AuditContext
from shipper.dispatch import Emit
from shipper.event import AuditEventType
from shipper.middleware.user import set_audit_user

SERVICE = "audit.test.Users"
REGISTERED = "audit.test.Registered"
Code = grpc.StatusCode
# Request to Get -> what the handler does with it.
OUTCOMES: dict[bytes, tuple[str, Code]] = {
    b"unauth": ("abort", Code.UNAUTHENTICATED),
    b"deny": ("abort", Code.PERMISSION_DENIED),
    b"limit": ("abort", Code.RESOURCE_EXHAUSTED),
    b"missing": ("set_code", Code.NOT_FOUND),
    b"crash": ("raise", Code.UNKNOWN),
}
STREAMED = [b"one", b"two", b"three"]

ENDS = "audit.test.Ends"
CALL_KINDS = ("Unary", "ServerStream", "ClientStream", "Bidi")
# Request (the first, for streaming requests) to an Ends method -> the code its client gets. A streaming
# response then sends a message, unless the handler aborted or raised. (Not before: a sync generator on
# an aio server runs ahead of the messages being sent, and an abort then races gRPC's own write.)
ENDINGS: dict[bytes, Code] = {
    b"return": Code.OK,
    b"abort-unauthenticated": Code.UNAUTHENTICATED,
    b"abort-permission-denied": Code.PERMISSION_DENIED,
    b"abort-not-found": Code.NOT_FOUND,
    b"set-code-not-found": Code.NOT_FOUND,
    b"raise": Code.UNKNOWN,
}
# Requests that make an Ends handler run on: until OUTLIVE_S past the call's deadline, or until the
# client cancels (at most WAITS times WAIT_S, less once Ends.released is set). A streaming response then
# sends nothing: a sync generator on an aio server that yields after its call ended blocks its thread
# for good (gRPC waits for the message to be taken), and the process could not exit.
OUTLIVE_DEADLINE = b"outlive-deadline"
AWAIT_CANCEL = b"await-cancel"
OUTLIVE_S = 0.2
WAIT_S = 0.01
WAITS = 1000


# Get with this request names the call's user, as a handler that authenticated the caller would.
NAMES_USER = b"names-user"
NAMED_USER = "bob"


class Handlers:
    """The service's behaviours, logging their events through `emit`."""

    def __init__(self, service: AuditContext, emit: Emit) -> None:
        self._service = service
        self._emit = emit

    def _read(self, what: str) -> None:
        # build() stamps the correlation ids in effect: the interceptor's, if it set them.
        builder = AuditEventBuilder(self._service).event_type(AuditEventType.DATA_READ).resource("user", what)
        self._emit(builder.build())

    def get(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        if request == NAMES_USER:
            set_audit_user(NAMED_USER)
        action, code = OUTCOMES.get(request, ("answer", Code.OK))
        if action == "abort":
            context.abort(code, "refused")
        elif action == "set_code":
            context.set_code(code)
            return b""
        elif action == "raise":
            raise RuntimeError("the handler failed")
        self._read("get")
        return b"ok"

    def list(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for message in STREAMED:
            self._read(message.decode())
            yield message

    def upload(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        return b"".join(requests)

    def chat(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        yield from requests

    def ping(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        return b"pong"

    async def get_async(self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        if request == NAMES_USER:
            set_audit_user(NAMED_USER)
        action, code = OUTCOMES.get(request, ("answer", Code.OK))
        if action == "abort":
            await context.abort(code, "refused")
        elif action == "set_code":
            context.set_code(code)
            return b""
        elif action == "raise":
            raise RuntimeError("the handler failed")
        self._read("get")
        return b"ok"

    async def list_async(
        self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        for message in STREAMED:
            await asyncio.sleep(0)
            self._read(message.decode())
            yield message

    async def upload_async(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        return b"".join([message async for message in requests])

    async def chat_async(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        async for message in requests:
            yield message

    async def ping_async(self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return b"pong"

    def generic(self, aio: bool) -> grpc.GenericRpcHandler:
        get, list_, upload, chat = (
            (self.get_async, self.list_async, self.upload_async, self.chat_async)
            if aio
            else (self.get, self.list, self.upload, self.chat)
        )
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Get": grpc.unary_unary_rpc_method_handler(get),
                "List": grpc.unary_stream_rpc_method_handler(list_),
                "Upload": grpc.stream_unary_rpc_method_handler(upload),
                "Chat": grpc.stream_stream_rpc_method_handler(chat),
            },
        )

    def registered(self, aio: bool) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        return {"Ping": grpc.unary_unary_rpc_method_handler(self.ping_async if aio else self.ping)}


class Ends:
    """The Ends service's handlers, sync or async. `started` and `finished` list the requests of the
    calls whose handler began and ended; `released` lets the handlers waiting for a cancellation go."""

    def __init__(self) -> None:
        self.started: list[bytes] = []
        self.finished: list[bytes] = []
        self.released = threading.Event()

    def _end(self, how: bytes, context: Any) -> bool:
        """End as `how` says; whether the call may still be going on."""
        self.started.append(how)
        try:
            if how.startswith(b"abort-"):
                context.abort(ENDINGS[how], "refused")
            elif how == b"set-code-not-found":
                context.set_code(Code.NOT_FOUND)
            elif how == b"raise":
                raise RuntimeError("the handler failed")
            elif how == OUTLIVE_DEADLINE:
                time.sleep(min(context.time_remaining(), WAIT_S * WAITS) + OUTLIVE_S)
            elif how == AWAIT_CANCEL:
                # A sync handler on an aio server has no is_active(): it waits to be released.
                is_active = getattr(context, "is_active", lambda: True)
                for _ in range(WAITS):
                    if self.released.is_set() or not is_active():
                        break
                    time.sleep(WAIT_S)
        finally:
            self.finished.append(how)
        return how not in (OUTLIVE_DEADLINE, AWAIT_CANCEL)

    async def _end_async(self, how: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bool:
        """End as `how` says; whether the call may still be going on."""
        self.started.append(how)
        try:
            if how.startswith(b"abort-"):
                await context.abort(ENDINGS[how], "refused")
            elif how == b"set-code-not-found":
                context.set_code(Code.NOT_FOUND)
            elif how == b"raise":
                raise RuntimeError("the handler failed")
            elif how == OUTLIVE_DEADLINE:
                await asyncio.sleep(min(context.time_remaining() or 0.0, WAIT_S * WAITS) + OUTLIVE_S)
            elif how == AWAIT_CANCEL:
                await asyncio.sleep(WAIT_S * WAITS)  # the call's cancellation cancels it
        finally:
            self.finished.append(how)
        return how not in (OUTLIVE_DEADLINE, AWAIT_CANCEL)

    def unary(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._end(request, context)
        return b"done"

    def server_stream(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        if self._end(request, context):
            yield b"done"

    def client_stream(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        self._end(next(requests), context)
        return b"done"

    def bidi(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        if self._end(next(requests), context):
            yield b"done"

    async def unary_async(self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await self._end_async(request, context)
        return b"done"

    async def server_stream_async(
        self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        if await self._end_async(request, context):
            yield b"done"

    async def client_stream_async(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        await self._end_async(await anext(requests), context)
        return b"done"

    async def bidi_async(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        if await self._end_async(await anext(requests), context):
            yield b"done"

    def generic(self, aio: bool) -> grpc.GenericRpcHandler:
        unary, server_stream, client_stream, bidi = (
            (self.unary_async, self.server_stream_async, self.client_stream_async, self.bidi_async)
            if aio
            else (self.unary, self.server_stream, self.client_stream, self.bidi)
        )
        return grpc.method_handlers_generic_handler(
            ENDS,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(unary),
                "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
                "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
                "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            },
        )


Configure = Callable[[Any], None]


@contextmanager
def grpc_server(kind: str, configure: Configure, interceptors: Iterable[Any] = ()) -> Iterator[grpc.Channel]:
    """Serve on 127.0.0.1 a `grpc.server` (kind "sync") or a `grpc.aio.server` (kind "aio", on a loop in a
    thread of its own) that `configure(server)` has added handlers to; yield a sync channel to it."""
    if kind == "sync":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=list(interceptors))
        configure(server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield channel
        finally:
            server.stop(None)
        return
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[grpc.aio.Server, int]:
        aio_server = grpc.aio.server(interceptors=list(interceptors))
        configure(aio_server)
        aio_port = aio_server.add_insecure_port("127.0.0.1:0")
        await aio_server.start()
        return aio_server, aio_port

    aio_server, aio_port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{aio_port}") as channel:
            yield channel
    finally:
        asyncio.run_coroutine_threadsafe(aio_server.stop(None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def add_registered(server: Any, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]) -> None:
    """Add `handlers` to `server` as registered methods of `service`, where grpcio has them (1.62 and
    later), else as a generic handler."""
    if hasattr(server, "add_registered_method_handlers"):
        server.add_registered_method_handlers(service, handlers)
    else:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))


def identity(data: bytes) -> bytes:
    return data


def unary(channel: grpc.Channel, method: str) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(method, request_serializer=identity, response_deserializer=identity)


def start_call(channel: grpc.Channel, kind: str, how: bytes, request_id: str, timeout: float) -> Any:
    """Start a call of the Ends method of `kind` (one of CALL_KINDS) asking it to end `how`, with the
    request id `request_id`; returns the call (a grpc.Call and future, or an iterator of responses)."""
    method, metadata = f"/{ENDS}/{kind}", (("x-request-id", request_id),)
    if kind == "Unary":
        return channel.unary_unary(method, identity, identity).future(how, timeout, metadata)
    if kind == "ServerStream":
        return channel.unary_stream(method, identity, identity)(how, timeout, metadata)
    if kind == "ClientStream":
        return channel.stream_unary(method, identity, identity).future(iter([how]), timeout, metadata)
    return channel.stream_stream(method, identity, identity)(iter([how]), timeout, metadata)


def client_code(kind: str, call: Any) -> Code:
    """The code the client got for a call `start_call` started, once it has ended."""
    if kind in ("Unary", "ClientStream"):
        with suppress(grpc.FutureCancelledError):
            call.exception()
    else:
        with suppress(grpc.RpcError):
            for _ in call:
                pass
    code: Code = call.code()
    return code
