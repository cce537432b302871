"""A receipt: what an acknowledged emit returns, and waits on, until the agent has the event synced.

Its own module, free of ZeroMQ, so that an event captured by `shipper.testing.capture_events()` gets
one (acknowledged at once) without loading the emitter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from shipper.errors import AuditDeliveryError, AuditRefusedError

if TYPE_CHECKING:
    import asyncio


class Receipt:
    """Set once the event is in the agent's WAL and synced.

    `lock` is the emitter's, held when the emitter sets the receipt; `forget` tells the emitter to stop
    tracking it after a timeout. A receipt made with neither is acknowledged already.
    """

    __slots__ = ("_acknowledged", "_callbacks", "_forget", "_gate", "_lock", "_refused", "event_id")

    def __init__(
        self,
        event_id: str,
        lock: threading.Lock | None = None,
        forget: Callable[[], object] | None = None,
    ) -> None:
        self.event_id = event_id
        self._lock = lock
        self._forget = forget
        # A bare lock, held until acknowledged, instead of a threading.Event: an Event is a Condition
        # over a lock, and with dozens of threads waiting its bookkeeping was most of what an
        # acknowledged emit cost the service's process.
        self._gate = threading.Lock()
        self._acknowledged = lock is None
        self._refused = False
        self._callbacks: list[Callable[[], object]] = []
        if not self._acknowledged:
            self._gate.acquire()

    @property
    def acknowledged(self) -> bool:
        """Whether the agent has the event synced (False while waiting, and when it refused it)."""
        return self._acknowledged and not self._refused

    def wait(self, timeout: float) -> None:
        """Block until acknowledged; AuditDeliveryError after `timeout` seconds, AuditRefusedError at
        once when the agent refused the event."""
        if self._acknowledged:
            self._raise_if_refused()
            return
        if self._gate.acquire(timeout=timeout):
            self._gate.release()  # open for any other waiter too
            self._raise_if_refused()
        else:
            self._give_up(timeout)

    async def wait_async(self, timeout: float) -> None:
        """Wait without blocking the event loop; AuditDeliveryError after `timeout` seconds."""
        if self._acknowledged:
            return
        import asyncio  # here: a service that never waits this way need not load it

        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._on_done(lambda: _resolve_threadsafe(loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self._give_up(timeout)
        finally:
            if not self._acknowledged and self._forget is not None:
                self._forget()  # the caller was cancelled: nobody waits for it any more
        self._raise_if_refused()

    def refuse(self) -> None:
        """Settle as refused: the agent sent the event to its rejects/ (the emitter holds its lock)."""
        self._refused = True
        self.set()

    def set(self) -> None:
        """Mark acknowledged (the emitter calls this holding its lock, once)."""
        self._acknowledged = True
        self._gate.release()
        for callback in self._callbacks:
            callback()

    def _on_done(self, callback: Callable[[], object]) -> None:
        if self._lock is not None:
            with self._lock:
                if not self._acknowledged:
                    self._callbacks.append(callback)
                    return
        callback()

    def _raise_if_refused(self) -> None:
        if self._refused:
            raise AuditRefusedError(self.event_id)

    def _give_up(self, timeout: float) -> None:
        if self._forget is not None:
            self._forget()
        if not self._acknowledged:
            raise AuditDeliveryError(self.event_id, timeout, "it waits in this process or in the spool")


def _resolve_threadsafe(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
    """From the emitter's thread; a loop closed meanwhile has nobody left to tell."""
    if not loop.is_closed():
        loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
