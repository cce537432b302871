"""An emitter over TCP: CURVE keys from its arguments or the environment, and never a plain connection
beyond loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq
from zmq.auth import create_certificates, load_certificate

from shipper.curve import CLIENT_CERT_ENV, SERVER_KEY_ENV, client_keys
from shipper.emitter import Emitter


@pytest.fixture(autouse=True)
def no_keys_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SERVER_KEY_ENV, raising=False)
    monkeypatch.delenv(CLIENT_CERT_ENV, raising=False)


def certificates(directory: Path) -> tuple[Path, Path]:
    """(the server's public certificate, a client's secret one)."""
    server, _ = create_certificates(directory, "server")
    _, client = create_certificates(directory, "client")
    return Path(server), Path(client)


@pytest.mark.parametrize(
    "endpoint", ["tcp://10.1.2.3:5555", "tcp://0.0.0.0:5555", "tcp://agent.example:5555"]
)
def test_an_emitter_refuses_tcp_beyond_loopback_without_keys_when_it_is_made(
    endpoint: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="TCP beyond loopback needs CURVE keys"):
        Emitter(endpoint, spool_dir=tmp_path)


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:5555", "tcp://[::1]:5555", "tcp://localhost:5555"])
def test_loopback_without_keys_stays_plain(endpoint: str) -> None:
    """For an agent with intake.curve = false: only local processes reach it."""
    assert client_keys(endpoint) is None


def test_one_certificate_without_the_other_is_refused(tmp_path: Path) -> None:
    server, _ = certificates(tmp_path)
    with pytest.raises(ValueError, match=f"{CLIENT_CERT_ENV} is not given"):
        client_keys("tcp://127.0.0.1:5555", server_key=server)


def test_a_public_certificate_given_as_the_client_s_is_refused(tmp_path: Path) -> None:
    server, _ = certificates(tmp_path)
    with pytest.raises(ValueError, match="holds no secret key"):
        client_keys("tcp://10.1.2.3:5555", server_key=server, client_cert=tmp_path / "client.key")


def test_keys_come_from_the_environment_and_make_a_socket_a_curve_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, client = certificates(tmp_path)
    monkeypatch.setenv(SERVER_KEY_ENV, str(server))
    monkeypatch.setenv(CLIENT_CERT_ENV, str(client))
    keys = client_keys("tcp://10.1.2.3:5555")
    assert keys is not None
    assert keys.server_public == load_certificate(server)[0]
    assert (keys.public, keys.secret) == load_certificate(client)
    with zmq.Context() as context, context.socket(zmq.PUSH) as push:
        keys.apply(push)
        assert push.mechanism == zmq.CURVE


def test_an_ipc_endpoint_takes_no_keys() -> None:
    assert client_keys("ipc:///tmp/x/intake.sock", "/nonexistent", "/nonexistent") is None
