"""What a worker reading the WAL on a cursor of its own shares (a sink's runner, the detector): sleeping
on its mailbox and on the intake's WAL-growth news, and obeying Stop."""

from __future__ import annotations

import time

import zmq

from auditship.agents.mailbox import Mailbox
from auditship.agents.messages import Stop
from auditship.agents.wal.growth import GrowthListener
from shipper.control import Message

ORPHAN_CHECK_S = 0.5
"""How often a wait looks whether the supervisor is still there (where no parent-death signal tells)."""


class WalWorker:
    mailbox: Mailbox
    growth: GrowthListener
    _stopping: bool = False
    """Stop now: a Stop without drain, or the supervisor gone."""
    _draining: bool = False
    """A Stop with drain came: deliver what the WAL holds, then stop."""

    def _report(self, *, force: bool = False) -> None:
        raise NotImplementedError

    def _wait(self, seconds: float, *, until_growth: bool = False) -> None:
        """Sleep on the mailbox for `seconds`, reporting counters meanwhile. Back early when the worker
        must stop now (a Stop without drain, or the supervisor gone), and with `until_growth` when the
        intake says the WAL grew (wal/growth.py). Without it the news is not listened to: a worker that
        waits out a batch's linger or a backoff would otherwise wake at every append the intake makes,
        which under a steady trickle costs more than the work itself; news left waiting ends the next
        `until_growth` wait at once, costing one look at the WAL. A drain is noted and the wait goes on:
        the supervisor sends its Stop again every tick, and a backoff cut short by each would hammer a
        destination that asked for a pause."""
        deadline = time.monotonic() + seconds
        poller = zmq.Poller()
        poller.register(self.mailbox.socket, zmq.POLLIN)
        if until_growth:
            poller.register(self.growth.socket, zmq.POLLIN)
        while not self._stopping and (remaining := deadline - time.monotonic()) > 0:
            if self.mailbox.orphaned():
                return
            ready = dict(poller.poll(max(1, int(min(remaining, ORPHAN_CHECK_S) * 1000))))
            if self.mailbox.socket in ready:
                self._obey(self.mailbox.receive())
            self._report()
            if self.growth.socket in ready and self.growth.drain():
                return

    def _obey(self, message: Message | None) -> None:
        if isinstance(message, Stop):
            self._draining = self._draining or message.drain
            self._stopping = self._stopping or not message.drain
