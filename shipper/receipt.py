"""A receipt: what an acknowledged emit returns, and waits on, until the agent has the event synced.

Its own module, free of ZeroMQ, so that an event captured by `shipper.testing.capture_events()` gets
one (acknowledged at once) without loading the emitter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from shipper.errors import AuditDeliveryError

if TYPE_CHECKING:
    import asyncio


class Receipt:
    """Set once the event is in the agent's WAL and synced.

    `lock` is the emitter's, held when the emitter sets the receipt; `forget` tells the emitter to stop
    tracking it after a timeout. A receipt made with neither is acknowledged already.
    """

    __slots__ = ("_callbacks", "_done", "_forget", "_lock", "event_id")

    def __init__(
        self,
        event_id: str,
        lock: threading.Lock | None = None,
        forget: Callable[[], object] | None = None,
    ) -> None:
        self.event_id = event_id
        self._lock = lock
        self._forget = forget
        self._done = threading.Event()
        self._callbacks: list[Callable[[], object]] = []
        if lock is None:
            self._done.set()

    @property
    def acknowledged(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> None:
        """Block until acknowledged; AuditDeliveryError after `timeout` seconds."""
        if not self._done.wait(timeout):
            self._give_up(timeout)

    async def wait_async(self, timeout: float) -> None:
        """Wait without blocking the event loop; AuditDeliveryError after `timeout` seconds."""
        if self._done.is_set():
            return
        import asyncio  # here: a service that never waits this way need not load it

        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._on_done(lambda: loop.call_soon_threadsafe(_resolve, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self._give_up(timeout)

    def set(self) -> None:
        """Mark acknowledged (the emitter calls this holding its lock)."""
        self._done.set()
        for callback in self._callbacks:
            callback()

    def _on_done(self, callback: Callable[[], object]) -> None:
        if self._lock is not None:
            with self._lock:
                if not self._done.is_set():
                    self._callbacks.append(callback)
                    return
        callback()

    def _give_up(self, timeout: float) -> None:
        if self._forget is not None:
            self._forget()
        if not self._done.is_set():
            raise AuditDeliveryError(self.event_id, timeout, "it waits in this process or in the spool")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
