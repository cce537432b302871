"""The apps the middleware tests audit: a FastAPI app and a plain Starlette app, each exercising what
the middleware must keep working (routers, mounts, streaming, websockets, lifespan, authentication)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from shipper.config import AuditConfig, AuditContext
from shipper.dispatch import Emit
from shipper.event import AuditEventType
from shipper.logger import AuditLogger
from shipper.middleware.asgi import AuditMiddleware, setup_fastapi_audit_middleware
from shipper.middleware.config import AuditMiddlewareConfig
from shipper.middleware.recorder import AuditRecorder

STREAM_CHUNKS = [b"first,", b"second,", b"third"]


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    app.state.started = True
    yield


async def echo_websocket(websocket: WebSocket) -> None:
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(f"echo {text}")
    await websocket.close(code=1000)


async def refuse_websocket(websocket: WebSocket) -> None:
    await websocket.close(code=1008)


async def streamed() -> AsyncIterator[bytes]:
    for chunk in STREAM_CHUNKS:
        await asyncio.sleep(0.01)
        yield chunk


def sub_app() -> Starlette:
    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"item": request.path_params["item_id"]})

    return Starlette(routes=[Route("/items/{item_id}", item)])


def fastapi_app(
    config: AuditMiddlewareConfig, service: AuditContext, emit: Emit
) -> tuple[FastAPI, AuditRecorder]:
    """The FastAPI app, its handlers logging through an AuditLogger, audited by the middleware."""
    audit_logger = AuditLogger(AuditConfig(), service, emit=emit)
    app = FastAPI(lifespan=lifespan)
    users = APIRouter(prefix="/api")

    @users.get("/users/{user_id}")
    async def get_user(user_id: str) -> dict[str, str]:
        await audit_logger.log_data_event(AuditEventType.DATA_READ, "user", user_id, "read")
        return {"id": user_id}

    @users.post("/users")
    async def create_user(request: Request) -> Response:
        response = Response(await request.body(), status_code=201, media_type="application/json")
        response.set_cookie("session", "s3ss10n-s3cr3t")
        return response

    app.include_router(users)

    @app.get("/refuse/{status}")
    async def refuse(status: int) -> JSONResponse:
        return JSONResponse({"refused": status}, status_code=status)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("the handler failed")

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(0.15)
        return {"slow": "yes"}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(streamed(), media_type="text/plain")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/started")
    async def started() -> dict[str, bool]:
        return {"started": getattr(app.state, "started", False)}

    app.add_api_websocket_route("/ws", echo_websocket)
    app.add_api_websocket_route("/ws-refused", refuse_websocket)
    app.mount("/legacy/{tenant}", sub_app())
    recorder = setup_fastapi_audit_middleware(app, config, context=service, emit=emit)
    return app, recorder


class BearerNames(AuthenticationBackend):
    """`Authorization: Bearer <name>` authenticates as <name>: enough to give requests a user."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        scheme, _, name = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not name:
            return None
        return AuthCredentials(["authenticated"]), SimpleUser(name)


async def raw_files(scope: Scope, receive: Receive, send: Send) -> None:
    """A bare ASGI app, mounted: not a Starlette router."""
    await PlainTextResponse(f"file {scope['path']}")(scope, receive, send)


def starlette_app(recorder: AuditRecorder) -> Starlette:
    """The plain Starlette app: the middleware given as Middleware(...), outside authentication."""

    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"item": request.path_params["item_id"], "user": request.user.display_name})

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(streamed(), media_type="text/plain")

    async def started(request: Request) -> JSONResponse:
        return JSONResponse({"started": getattr(request.app.state, "started", False)})

    routes = [
        Route("/items/{item_id:int}", item),
        Route("/stream", stream),
        Route("/started", started),
        WebSocketRoute("/ws", echo_websocket),
        Mount("/files", app=raw_files),
    ]
    middleware = [
        Middleware(AuditMiddleware, recorder=recorder),
        Middleware(AuthenticationMiddleware, backend=BearerNames()),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


async def websocket_session(app: ASGIApp, path: str, texts: list[str]) -> list[Message]:
    """Drive a websocket connection to `app` directly over ASGI (the uvicorn here has no websocket library):
    connect, send `texts`, then disconnect; returns what the app sent."""
    inbox: list[Message] = [
        {"type": "websocket.connect"},
        *({"type": "websocket.receive", "text": text} for text in texts),
        {"type": "websocket.disconnect", "code": 1000},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return inbox.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"app")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "subprotocols": [],
    }
    await app(scope, receive, send)
    return sent
