"""Where each emitter's confirmations go: the connections of its owner that asked for them.

Confirmations are addressed, not broadcast. An emitter connects a DEALER socket to the intake's ROUTER
(confirm.sock, or the next port over TCP) and says hello with its id (shipper.wire.Hello). The ROUTER
names the connection (its routing id), and the kernel (ipc) or the CURVE handshake (TCP) names who is at
the other end. A run's confirmation goes to the connections whose sender is the run's owner and which
said hello with the run's emitter id, and nowhere else: a user who says hello with another's emitter id
is recorded under its own uid, and hears only of its own frames under that id.

Bounded: past `limit` routes the one that said hello longest ago is forgotten (its emitter says hello
again when its confirmations stop coming), and a route libzmq no longer knows (its connection closed)
is removed at the first send that finds it gone.
"""

from __future__ import annotations

from collections import OrderedDict

from auditship.agents.intake.senders import Principal

MAX_ROUTES = 65_536
"""Connections remembered at most: a host's emitters, twice over, with room to spare."""

RunKey = tuple[Principal, str]
"""A run's owner and its emitter id."""


class Routes:
    def __init__(self, limit: int = MAX_ROUTES) -> None:
        self.limit = limit
        self._keys: OrderedDict[bytes, RunKey] = OrderedDict()
        self._routes: dict[RunKey, set[bytes]] = {}

    def add(self, route: bytes, who: Principal, emitter: str) -> None:
        """The connection `route`, whose sender is `who`, asks for the confirmations of `emitter`."""
        self.remove(route)
        key = (who, emitter)
        self._keys[route] = key
        self._routes.setdefault(key, set()).add(route)
        while len(self._keys) > self.limit:
            self.remove(next(iter(self._keys)))

    def of(self, who: Principal, emitter: str) -> list[bytes]:
        """The connections to send the confirmations of `emitter`'s run owned by `who` to."""
        return list(self._routes.get((who, emitter), ()))

    def remove(self, route: bytes) -> None:
        key = self._keys.pop(route, None)
        if key is None:
            return
        routes = self._routes[key]
        routes.discard(route)
        if not routes:
            del self._routes[key]

    def __len__(self) -> int:
        return len(self._keys)
