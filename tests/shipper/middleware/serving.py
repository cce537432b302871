"""Serve an ASGI app with uvicorn on 127.0.0.1 from a thread, for the length of a `with` block."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from tests.waiting import wait_for


@contextmanager
def served(app: object, *, lifespan: str = "on") -> Iterator[str]:
    """Yield the base URL of `app` served by uvicorn (h11); the server is stopped on leaving."""
    # Named as TCP so that asyncio turns Nagle off on its connections, as on any socket uvicorn binds.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    # proxy_headers off: uvicorn would otherwise rewrite the client address from X-Forwarded-For itself.
    config = uvicorn.Config(
        app, log_level="warning", lifespan=lifespan, http="h11", proxy_headers=False, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 10, "uvicorn to listen")
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()
