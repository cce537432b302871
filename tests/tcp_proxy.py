"""A TCP forwarder on 127.0.0.1 that a test can take away and bring back: a database outage as a sink
sees it (connections refused, the open ones cut), with the real server behind it."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, args=(listener,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.close()
            self._open.clear()

    def _serve(self, listener: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        pairs: dict[socket.socket, socket.socket] = {}
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(0.1):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is listener:
                        self._accept(listener, selector, pairs)
                    else:
                        self._pump(sock, selector, pairs)
        finally:
            selector.close()
            listener.close()
            for sock in pairs:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(
        self,
        listener: socket.socket,
        selector: selectors.BaseSelector,
        pairs: dict[socket.socket, socket.socket],
    ) -> None:
        client, _ = listener.accept()
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        for one, other in ((client, server), (server, client)):
            pairs[one] = other
            selector.register(one, selectors.EVENT_READ)
        with self._lock:
            self._open.update((client, server))

    def _pump(
        self, sock: socket.socket, selector: selectors.BaseSelector, pairs: dict[socket.socket, socket.socket]
    ) -> None:
        other = pairs.get(sock)
        try:
            data = sock.recv(65536)
            if data and other is not None:
                other.sendall(data)
                return
        except OSError:
            pass
        for one in (sock, other):
            if one is not None and one in pairs:
                selector.unregister(one)
                pairs.pop(one, None)
                with self._lock:
                    self._open.discard(one)
                with contextlib.suppress(OSError):
                    one.close()
