"""A small gRPC service for the interceptor tests, with no protobuf: bytes in, bytes out, through gRPC's
generic handlers, in a sync and an aio flavour; and a way to serve either on 127.0.0.1.

`/audit.test.Users/Get` answers b"ok" and logs a DATA_READ; other requests make it abort, set a code or
raise (see OUTCOMES). `List` streams three messages, logging one DATA_READ each; `Upload` joins what it
is sent; `Chat` echoes each message; `Ticks` streams until the client cancels (a sync handler in both
flavours). `/audit.test.Registered/Ping` is added as a registered method.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
import grpc.aio

from shipper.builder import AuditEventBuilder
from shipper.config import AuditContext
from shipper.event import AuditEventType
from shipper.logger import Emit

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
# Ticks streams a message every TICK_S, at most MAX_TICKS of them, until the client cancels.
TICK_S = 0.01
MAX_TICKS = 500


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

    def ticks(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in range(MAX_TICKS):
            yield b"tick"
            time.sleep(TICK_S)

    def upload(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        return b"".join(requests)

    def chat(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        yield from requests

    def ping(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        return b"pong"

    async def get_async(self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
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
                "Ticks": grpc.unary_stream_rpc_method_handler(self.ticks),
            },
        )

    def registered(self, aio: bool) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        return {"Ping": grpc.unary_unary_rpc_method_handler(self.ping_async if aio else self.ping)}


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


def identity(data: bytes) -> bytes:
    return data


def unary(channel: grpc.Channel, method: str) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(method, request_serializer=identity, response_deserializer=identity)
