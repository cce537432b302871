"""CURVE keys for an emitter that sends to an agent over TCP (CurveZMQ: the connection is encrypted,
the agent proves it holds the server key, and the emitter proves it holds a key the agent allows).

An emitter over tcp:// is given the agent's public certificate (`server.key`, made by `audit-agent keys
init`) and a client certificate of its own (the secret file `audit-agent keys add NAME` prints), as
constructor arguments or through AUDITSHIP_CURVE_SERVER_KEY and AUDITSHIP_CURVE_CLIENT_CERT, which name
the files. Both of its sockets (PUSH and SUB) get them when they are opened, never per emit. Without
keys, a TCP endpoint that is not loopback is refused when the emitter is made: no event crosses a
network in clear. A loopback endpoint without keys stays plain, for an agent configured with
`intake.curve = false` (README, "Over TCP").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import zmq
from zmq.auth import load_certificate

from shipper import endpoint as endpoints

SERVER_KEY_ENV = "AUDITSHIP_CURVE_SERVER_KEY"
CLIENT_CERT_ENV = "AUDITSHIP_CURVE_CLIENT_CERT"


class ClientKeys(NamedTuple):
    """Z85-encoded keys, as libzmq's CURVE socket options take them."""

    server_public: bytes
    public: bytes
    secret: bytes

    def apply(self, socket: zmq.Socket[bytes]) -> None:
        """Make `socket` a CURVE client of the agent; before it connects."""
        socket.curve_serverkey = self.server_public
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret


def client_keys(
    endpoint: str, server_key: str | Path | None = None, client_cert: str | Path | None = None
) -> ClientKeys | None:
    """The keys to reach `endpoint` with, from the arguments or the environment; None for an ipc
    endpoint, or a loopback one given no keys. Raises ValueError for a TCP endpoint beyond loopback
    without keys, for one file without the other, and for a file that does not hold its key."""
    if not endpoint.startswith("tcp://"):
        return None
    server_key = server_key or os.environ.get(SERVER_KEY_ENV) or None
    client_cert = client_cert or os.environ.get(CLIENT_CERT_ENV) or None
    if server_key is None and client_cert is None:
        if endpoints.is_loopback(endpoint):
            return None
        raise ValueError(
            f"endpoint {endpoint}: TCP beyond loopback needs CURVE keys, or events would cross the "
            f"network in clear: give the agent's public certificate (curve_server_key, {SERVER_KEY_ENV}) "
            f"and a client certificate it allows (curve_client_cert, {CLIENT_CERT_ENV}; "
            "`audit-agent keys add NAME` makes one)"
        )
    if server_key is None or client_cert is None:
        missing = SERVER_KEY_ENV if server_key is None else CLIENT_CERT_ENV
        raise ValueError(f"endpoint {endpoint}: CURVE needs both certificates; {missing} is not given")
    server_public, _ = _certificate(server_key, SERVER_KEY_ENV)
    public, secret = _certificate(client_cert, CLIENT_CERT_ENV)
    if secret is None:
        raise ValueError(
            f"{CLIENT_CERT_ENV} {client_cert}: holds no secret key; give the client's secret "
            "certificate (NAME.key_secret), not its public one"
        )
    return ClientKeys(server_public, public, secret)


def _certificate(path: str | Path, name: str) -> tuple[bytes, bytes | None]:
    try:
        return load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{name} {path}: not a readable CURVE certificate ({exc})") from exc
