"""The TCP intake with CurveZMQ, on 127.0.0.1 with a real agent: an allowed client key delivers, under
its name as the sender; an unknown key, or none, delivers nothing and is counted as refused."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest
import zmq
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from zmq.auth import load_certificate

from auditship.agents.crypto import Keyring, decrypt_sensitive
from auditship.agents.curve_keys import CurveKeys
from auditship.agents.intake.curve_auth import CurveGate
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType
from shipper.spool_seal import Sealer
from shipper.wire import (
    Frame,
    encode_batch,
    encoded_frame_decoder,
    frame_decoder,
    frame_encoder,
    message_frames,
    opened_frame,
    sealed_frame,
)
from tests.agentproc import QUICK_CONFIG, RunningAgent, agent_running, file_events
from tests.waiting import poll_until, wait_for

pytestmark = pytest.mark.slow


def free_port_pair() -> int:
    """A port whose next one is free too (the confirmations' ROUTER binds PORT+1); bounded tries."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise AssertionError("no two neighbouring free ports on 127.0.0.1")


@pytest.fixture(scope="module")
def curve_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="as-curve-"))
    keys = CurveKeys(directory)
    keys.init()
    keys.add("billing-host")
    yield directory
    shutil.rmtree(directory)


@pytest.fixture(scope="module")
def agent(curve_dir: Path) -> Iterator[RunningAgent]:
    config = (
        f'endpoint = "tcp://127.0.0.1:{free_port_pair()}"\n'
        + QUICK_CONFIG
        + f'[intake]\ncurve_dir = "{curve_dir}"\n[sinks.parquet]\nenabled = false\n'
    )
    with agent_running(config) as running:
        yield running


def event(n: int) -> AuditEvent:
    return AuditEvent(event_type=AuditEventType.DATA_READ, service_name="billing", details={"n": n})


def test_a_client_with_an_allowed_key_delivers_and_its_key_s_name_is_the_sender(
    agent: RunningAgent, curve_dir: Path, tmp_path: Path
) -> None:
    keys = CurveKeys(curve_dir)
    emitter = Emitter(
        agent.config.intake_endpoint,
        spool_dir=tmp_path,
        curve_server_key=keys.server_public,
        curve_client_cert=keys.issued / "billing-host.key_secret",
    )
    sent = event(1)
    emitter.emit(sent, wait=10)
    emitter.close()
    stored = wait_for(lambda: file_events(agent.dirs.data), 30, "the event in the file sink")
    assert [e["event_id"] for e in stored] == [sent.event_id]
    assert stored[0]["sender"] == {"user": "billing-host"}
    assert list(tmp_path.iterdir()) == [], "nothing spilled: it went over the CURVE connection"


def test_sensitive_values_leave_the_emitter_sealed_and_the_agent_stores_them_encrypted(
    agent: RunningAgent, curve_dir: Path, tmp_path: Path
) -> None:
    """Over TCP the emitter seals an event with sensitive values to the agent's CURVE key: a CURVE server
    of our own with the agent's keys receives a frame whose event is a sealed bin, with no plaintext in
    it, which the intake's unsealer opens. Sent to the agent, it is stored with the value encrypted
    under the agent's field key, which decrypts it; an event without sensitive values goes as it is."""
    keys = CurveKeys(curve_dir)
    secret = "4111-1111-1111-1111-SEALED"
    sensitive = AuditEvent(event_type=AuditEventType.TRANSACTION, sensitive={"card_number": secret})
    port = free_port_pair()
    with zmq.Context() as context, context.socket(zmq.PULL) as pull:
        pull.linger = 0
        pull.curve_server = True
        pull.curve_publickey, pull.curve_secretkey = load_certificate(keys.server_secret)
        pull.bind(f"tcp://127.0.0.1:{port}")
        emitter = Emitter(
            f"tcp://127.0.0.1:{port}",
            spool_dir=tmp_path,
            curve_server_key=keys.server_public,
            curve_client_cert=keys.issued / "billing-host.key_secret",
        )
        emitter.emit(sensitive)
        emitter.emit(event(2))
        assert pull.poll(10_000), "the batch over CURVE"
        wire = message_frames(pull.recv())
        emitter.close(0)
    assert secret.encode() not in b"".join(wire)
    sealed = encoded_frame_decoder.decode(wire[0])
    assert memoryview(sealed.event)[0] in (0xC4, 0xC5, 0xC6), "the sensitive event is a msgpack bin"
    gate = CurveGate(zmq.Context.instance(), keys)
    try:
        opened = frame_decoder.decode(opened_frame(wire[0], gate.unsealer().unseal))
    finally:
        gate.close()
    assert (opened.event.event_id, opened.event.sensitive) == (sensitive.event_id, {"card_number": secret})
    assert frame_decoder.decode(wire[1]).event.details == {"n": 2}

    emitter = Emitter(
        agent.config.intake_endpoint,
        spool_dir=tmp_path,
        curve_server_key=keys.server_public,
        curve_client_cert=keys.issued / "billing-host.key_secret",
    )
    emitter.emit(sensitive, wait=10)
    emitter.close()
    stored = wait_for(
        lambda: [e for e in file_events(agent.dirs.data) if e["event_id"] == sensitive.event_id],
        30,
        "the sensitive event in the file sink",
    )
    written = msgspec.convert(stored[0], AuditEvent)
    assert written.sensitive["card_number"] != secret
    keyring = Keyring.load_or_create(agent.dirs.keys)
    assert decrypt_sensitive(written, keyring).sensitive == {"card_number": secret}


@contextmanager
def raw_client(endpoint: str, keys: tuple[bytes, bytes, bytes] | None) -> Iterator[None]:
    """A PUSH socket of our own, sending one frame and kept open while the test waits (a socket closed
    at once would end its handshake before the intake decides): a CURVE client with (server, public,
    secret), or plain."""
    frame = frame_encoder.encode(Frame("intruder", 1, 0, event(99)))
    with zmq.Context() as context, context.socket(zmq.PUSH) as push:
        push.linger = 0
        if keys is not None:
            push.curve_serverkey, push.curve_publickey, push.curve_secretkey = keys
        push.connect(endpoint)
        # Without IMMEDIATE the message queues until the handshake, which never completes.
        push.send(frame, zmq.NOBLOCK)
        yield


def refused(agent: RunningAgent) -> int:
    return int(agent.counters("intake").get("tcp_refused", 0))


PLAIN_REFUSED = "no CURVE, or CURVE with another server key"


def a_plain_client_is_logged(agent: RunningAgent) -> bool:
    """Whether a new client without CURVE is logged as refused within 15 s (the first line of a kind
    is said at once). A plain client does not try again after the mechanism mismatch, and libzmq may
    see it hang up before its greeting's mechanism arrives: a disconnect then, not a refusal."""
    with raw_client(agent.config.intake_endpoint, None):
        return bool(poll_until(lambda: PLAIN_REFUSED in agent.log(), 15))


def test_an_unknown_key_or_none_delivers_nothing_and_is_counted_and_logged_as_refused(
    agent: RunningAgent, curve_dir: Path
) -> None:
    before = refused(agent)
    server = CurveKeys(curve_dir).server_keys()[0]
    unknown = zmq.curve_keypair()
    key_refused = f"its key is not in the allow-list (keys refused: {unknown[0].decode()})"
    # A client with a key tries its handshake again and again; a kind is logged at most every 10 s.
    with raw_client(agent.config.intake_endpoint, (server, *unknown)):
        wait_for(lambda: key_refused in agent.log(), 60, f"the log line {key_refused!r}")
    assert any(a_plain_client_is_logged(agent) for _ in range(4)), f"the log line {PLAIN_REFUSED!r}"
    wait_for(lambda: refused(agent) >= before + 2, 30, "both refusals counted")
    assert all(e.get("details") != {"n": 99} for e in file_events(agent.dirs.data))


def allow_list_shown(agent: RunningAgent, names: str) -> bool:
    """Whether the intake's last reading of the allow-list (once a second, when it changed) was `names`."""
    return agent.log().rsplit("CURVE allow-list", 1)[-1].split("\n", 1)[0].endswith(f"({names})")


def test_a_revoked_key_s_open_connection_delivers_no_more_and_it_cannot_connect_again(
    agent: RunningAgent, curve_dir: Path
) -> None:
    keys = CurveKeys(curve_dir)
    keys.add("temporary")
    public, secret = load_certificate(keys.issued / "temporary.key_secret")
    assert secret is not None
    wait_for(lambda: allow_list_shown(agent, "billing-host, temporary"), 10, "the new key taken")
    server = keys.server_keys()[0]
    first, second = event(1001), event(1002)
    with zmq.Context() as context, context.socket(zmq.PUSH) as push:
        push.linger = 0
        push.curve_serverkey, push.curve_publickey, push.curve_secretkey = server, public, secret
        push.connect(agent.config.intake_endpoint)
        push.send(frame_encoder.encode(Frame("temporary-emitter", 1, 0, first)))
        wait_for(lambda: first.event_id in {e["event_id"] for e in file_events(agent.dirs.data)}, 30, "first")
        keys.revoke("temporary")
        wait_for(lambda: allow_list_shown(agent, "billing-host"), 10, "the revocation taken")
        push.send(frame_encoder.encode(Frame("temporary-emitter", 2, 0, second)))
        wait_for(lambda: agent.counters("intake").get("curve_revoked", 0) >= 1, 30, "the frame dropped")
    assert second.event_id not in {e["event_id"] for e in file_events(agent.dirs.data)}
    before = refused(agent)
    with raw_client(agent.config.intake_endpoint, (server, public, secret)):
        wait_for(lambda: refused(agent) > before, 30, "the new connection refused")


def test_an_event_sealed_to_another_key_is_rejected_with_its_reason_and_the_next_is_stored(
    agent: RunningAgent, curve_dir: Path
) -> None:
    """An allowed client whose event is sealed to a key not the agent's: the frame goes to rejects/
    with the reason, and the plain frame after it on the same connection is stored."""
    keys = CurveKeys(curve_dir)
    public, secret = load_certificate(keys.issued / "billing-host.key_secret")
    assert secret is not None
    stranger = Sealer(X25519PrivateKey.generate().public_key().public_bytes_raw())
    unopenable = event(2001)
    after = event(2002)
    with zmq.Context() as context, context.socket(zmq.PUSH) as push:
        push.linger = 0
        push.curve_serverkey, push.curve_publickey, push.curve_secretkey = (
            keys.server_keys()[0],
            public,
            secret,
        )
        push.connect(agent.config.intake_endpoint)
        frames = [
            sealed_frame(frame_encoder.encode(Frame("stranger-seal", 1, 1, unopenable)), stranger.seal),
            frame_encoder.encode(Frame("stranger-seal", 2, 2, after)),
        ]
        push.send(encode_batch(frames))
        wait_for(lambda: after.event_id in {e["event_id"] for e in file_events(agent.dirs.data)}, 30, "after")
    assert unopenable.event_id not in {e["event_id"] for e in file_events(agent.dirs.data)}
    reasons = [
        msgspec.json.decode(line)["reason"]
        for path in (agent.dirs.data / "rejects").glob("*.jsonl")
        for line in path.read_bytes().splitlines()
    ]
    assert any(r.startswith("sealed event: authentication failed") for r in reasons), reasons
