"""CurveZMQ on the TCP intake: who may connect, and under which name their events are stored.

The PULL and the confirmations' ROUTER are CURVE servers with the agent's key pair, so every
connection is encrypted and its client proved it holds a secret key. Which keys may connect is decided
by a ZAP handler, pyzmq's ThreadAuthenticator in the intake process, from the allow-list
(curve_keys.CurveKeys.clients): an allowed key's connection gets the key's name as its User-Id, which
libzmq hands with every message, and which the intake takes as the sender (senders.Senders.of_key).
The sockets set ZAP_ENFORCE_DOMAIN: without it libzmq lets a CURVE client in whenever no ZAP handler
answers, so a handler that failed to start would admit every key.

ZAP runs once per connection, at the handshake. The allow-list is read again when its directory
changes (looked at every second); a revoked key's open connection is not cut by libzmq, so its messages
are dropped by name (`allows`) from the next look on, and its emitter spills them.

A refused handshake (a key not in the allow-list, a client without CURVE or with another server key)
is seen on the PULL socket's monitor: counted (`tcp_refused`) and logged at most once every 10 s with
the keys the handler turned away meanwhile, for an operator who means to allow one.
A client without CURVE does not try again after the mechanism mismatch, and libzmq may see it hang up
before its greeting is read: a disconnect, which is neither counted nor logged.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any

import zmq
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from auditship.agents.crypto.spool_unseal import Unsealer
from auditship.agents.curve_keys import CurveKeys
from auditship.agents.intake.rejects import WARN_INTERVAL_S, WarningLimit

log = logging.getLogger("auditship.intake")
DOMAIN = "auditship"
_REFUSALS = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "its key is not in the allow-list",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "no CURVE, or CURVE with another server key",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the handshake failed",
}


class _AllowList(ThreadAuthenticator):
    """pyzmq's authenticator, deciding by `names` (Z85 public key -> client name), which the intake
    replaces whole when the allow-list changes: the handler thread sees the old map or the new one."""

    def __init__(self, context: zmq.Context[Any]) -> None:
        super().__init__(context, log=logging.getLogger("auditship.intake.zap"))
        self.names: dict[bytes, str] = {}
        self.turned_away: collections.deque[bytes] = collections.deque(maxlen=8)
        """The last keys refused, for the log line; appended by the handler thread."""
        self.configure_curve_callback(DOMAIN, self)

    def callback(self, domain: str, key: bytes) -> bool:
        """The credentials provider pyzmq asks (with the Z85 key) whether a CURVE client may connect."""
        if key in self.names:
            return True
        self.turned_away.append(key)
        return False

    def curve_user_id(self, client_public_key: bytes) -> str:
        """The connection's User-Id: its key's name (pyzmq's default is the key itself)."""
        return self.names[z85.encode(client_public_key)]


class CurveGate:
    def __init__(self, context: zmq.Context[Any], keys: CurveKeys) -> None:
        # The key pair first: a missing one is a ConfigError before any thread starts.
        self.public, self.secret = keys.server_keys()
        self.keys = keys
        self.refused = 0
        self._allowed: frozenset[str] = frozenset()
        self._stamp: int | None = None
        self._warnings = WarningLimit(WARN_INTERVAL_S)
        self._authenticator = _AllowList(context)
        self._authenticator.start()
        self._monitor: zmq.Socket[bytes] | None = None
        self.reload_if_changed()

    def serve(self, socket: zmq.Socket[bytes]) -> None:
        """Make `socket` a CURVE server admitting the allow-list; before it binds."""
        socket.curve_server = True
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret
        socket.zap_domain = DOMAIN.encode()
        socket.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)

    def unsealer(self) -> Unsealer:
        """Opens the events emitters sealed to this server key (shipper.spool_seal: a Curve25519 key is
        an X25519 key)."""
        return Unsealer(X25519PrivateKey.from_private_bytes(z85.decode(self.secret)))

    def watch(self, socket: zmq.Socket[bytes]) -> None:
        """Count and log the handshakes `socket` refuses (read in `note_refusals`)."""
        self._monitor = socket.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_AUTH
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        )

    def allows(self, name: str) -> bool:
        """Whether the client `name` is still in the allow-list (its connection may predate a revoke)."""
        return name in self._allowed

    def reload_if_changed(self) -> None:
        """Read the allow-list again when `clients/` changed (keys add, allow or revoke renames or removes
        a file in it, which changes the directory's mtime)."""
        try:
            stamp = self.keys.clients.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = 0
        if stamp == self._stamp:
            return
        self._stamp = stamp
        allowed = self.keys.allowed()
        self._authenticator.names = {key: name for name, key in allowed.items()}
        self._allowed = frozenset(allowed)
        log.info(
            "CURVE allow-list %s: %d client keys (%s)", self.keys.clients, len(allowed), ", ".join(allowed)
        )

    def note_refusals(self) -> None:
        """Take the monitor's refused handshakes: count them, and log one line per kind at most every
        WARN_INTERVAL_S."""
        if self._monitor is None:
            return
        now = time.monotonic()
        while self._monitor.poll(0):
            event = zmq.Event(recv_monitor_message(self._monitor)["event"])
            self.refused += 1
            left_out = self._warnings.admit(str(int(event)), now)
            if left_out is not None:
                log.warning(
                    "TCP intake refused a client at the handshake: %s%s",
                    self._why(event),
                    f"; {left_out} more such refusals since the last such line" if left_out else "",
                )
        for kind, left_out in self._warnings.overdue(now):
            log.warning(
                "TCP intake refused %d more clients at the handshake since the last such line: %s",
                left_out,
                self._why(zmq.Event(int(kind))),
            )

    def _why(self, event: zmq.Event) -> str:
        """The refusal's reason, with the keys turned away since the last line that named them."""
        reason = _REFUSALS.get(event, "the handshake failed")
        turned_away = self._authenticator.turned_away
        if event != zmq.EVENT_HANDSHAKE_FAILED_AUTH or not turned_away:
            return reason
        keys = ", ".join(turned_away.popleft().decode() for _ in range(len(turned_away)))
        return f"{reason} (keys refused: {keys})"

    def close(self) -> None:
        if self._monitor is not None:
            self._monitor.close(linger=0)
        self._authenticator.stop()
