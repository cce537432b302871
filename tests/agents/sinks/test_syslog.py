"""The syslog sink against a real rsyslog on a loopback port (and a TLS receiver for the TLS option)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from io import BufferedReader
from pathlib import Path

import msgspec
import pytest

from auditship.agents.sinks.base import Delivery, Entry
from auditship.agents.sinks.syslog.config import SyslogSinkConfig
from auditship.agents.sinks.syslog.sink import SyslogSink
from shipper.event import AuditEvent, AuditEventType, AuditSeverity
from tests import rsyslog
from tests.agents.sinks.entries import entries
from tests.agents.sinks.test_syslog_cef import parse_cef
from tests.certs import self_signed
from tests.services import require
from tests.waiting import wait_for


@pytest.fixture
def server() -> Iterator[rsyslog.Rsyslog]:
    require(rsyslog.available(), "rsyslogd is not installed (apt-get install rsyslog)")
    running = rsyslog.Rsyslog().start()
    yield running
    running.cleanup()


def open_sink(port: int, **config: object) -> SyslogSink:
    config = {"tls": False, **config}  # rsyslog here listens in plain TCP
    sink = SyslogSink(SyslogSinkConfig(enabled=True, port=port, timeout_s=2.0, **config))  # type: ignore[arg-type]
    sink.open()
    return sink


def received(server: rsyslog.Rsyslog, count: int) -> list[dict[str, str]]:
    def probe() -> list[dict[str, str]]:
        messages = server.messages()
        return messages if len(messages) >= count else []

    return wait_for(probe, 10, f"{count} messages in rsyslog's output")


def test_rsyslog_receives_every_event_as_an_rfc5424_message_with_its_json(server: rsyslog.Rsyslog) -> None:
    """Two batches, 300 events: rsyslog parses each header as we meant it and the JSON is the event."""
    sink = open_sink(server.port, app_name="billing")
    batch = entries(range(300), severity=AuditSeverity.HIGH, node_id="web-1")
    assert sink.write_batch(batch[:100]) is Delivery.DELIVERED
    assert sink.write_batch(batch[100:]) is Delivery.DELIVERED
    sink.close()
    messages = received(server, 300)
    assert len(messages) == 300
    for entry, message in zip(batch, messages, strict=True):
        assert message["pri"] == str(13 * 8 + 3)  # facility log audit, severity err
        assert (message["hostname"], message["app"], message["msgid"]) == ("web-1", "billing", "data_read")
        assert message["raw"] == sink.message(entry.event).decode()
        assert msgspec.json.decode(message["msg"])["event_id"] == entry.event.event_id
    reported = datetime.fromisoformat(messages[0]["timestamp"])
    assert abs(reported - batch[0].event.timestamp) < timedelta(milliseconds=1)


def test_cef_with_equals_backslash_pipe_and_line_breaks_arrives_one_message_each_and_reads_back(
    server: rsyslog.Rsyslog,
) -> None:
    """Octet counting keeps each message whole, and the CEF escaping survives rsyslog: the values
    read back from what rsyslog stored are the ones sent."""
    nasty = ["a=b", "back\\slash", "pi|pe", "two\nlines", "cr\rlf\r\n", "all = \\ | \n of them"]
    events = [
        AuditEvent(
            event_type=AuditEventType.DATA_UPDATE,
            service_name=f"svc|{n}",
            message=text,
            user_id=text,
            details={"text": text},
        )
        for n, text in enumerate(nasty)
    ]
    sink = open_sink(server.port, payload="cef")
    assert sink.write_batch([Entry(n, event) for n, event in enumerate(events)]) is Delivery.DELIVERED
    sink.close()
    messages = received(server, len(events))
    assert len(messages) == len(events)
    for event, message in zip(events, messages, strict=True):
        assert "#0" not in message["raw"], "a control character reached rsyslog unescaped"
        fields, extension = parse_cef(message["msg"])
        assert fields[2] == event.service_name
        assert fields[5] == event.message.replace("\r", " ").replace("\n", " ")
        assert extension["msg"] == extension["suser"] == event.message
        assert msgspec.json.decode(extension["cs5"])["details"] == {"text": event.message}


def test_after_rsyslog_restarts_the_sink_reconnects_and_nothing_is_lost(server: rsyslog.Rsyslog) -> None:
    """While rsyslog is down the batch stays in the WAL (ERRORED); after the restart it is delivered."""
    sink = open_sink(server.port)
    batch = entries(range(20))
    assert sink.write_batch(batch[:10]) is Delivery.DELIVERED
    received(server, 10)
    server.stop()
    assert sink.write_batch(batch[10:]) is Delivery.ERRORED
    server.start()
    assert sink.write_batch(batch[10:]) is Delivery.DELIVERED
    sink.close()
    ids = [msgspec.json.decode(m["msg"])["event_id"] for m in received(server, 20)]
    assert ids == [entry.event.event_id for entry in batch]


class TlsReceiver:
    """A TLS syslog receiver with a self-signed certificate for 127.0.0.1: reads octet-counted frames."""

    def __init__(self, directory: Path) -> None:
        self.cert, key_file = self_signed(directory)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(self.cert, key_file)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.frames: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        """Accept connections until closed; a failed handshake (the unverified test) just ends one."""
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            try:
                with self._context.wrap_socket(raw, server_side=True) as conn:
                    self._read_frames(conn.makefile("rb"))
            except (ssl.SSLError, OSError):
                continue

    def _read_frames(self, stream: BufferedReader) -> None:
        buffer = b""
        while chunk := stream.read1(65536):
            buffer += chunk
            while b" " in buffer:
                length, _, rest = buffer.partition(b" ")
                if len(rest) < int(length):
                    break
                self.frames.append(rest[: int(length)])
                buffer = rest[int(length) :]

    def close(self) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the serving thread
        self._listener.close()
        self._thread.join(5)


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[TlsReceiver]:
    receiver = TlsReceiver(tmp_path)
    yield receiver
    receiver.close()


def test_over_tls_the_server_certificate_is_verified_against_ca_file(tls_receiver: TlsReceiver) -> None:
    sink = open_sink(tls_receiver.port, tls=True, ca_file=str(tls_receiver.cert))
    batch = entries(range(5))
    assert sink.write_batch(batch) is Delivery.DELIVERED
    sink.close()
    frames = wait_for(lambda: len(tls_receiver.frames) >= 5 and tls_receiver.frames, 10, "five frames")
    assert frames == [sink.message(entry.event) for entry in batch]


def test_over_tls_an_unknown_certificate_is_refused_by_default(tls_receiver: TlsReceiver) -> None:
    """Verification is on unless turned off: a self-signed certificate without its CA is not trusted."""
    sink = open_sink(tls_receiver.port, tls=True)
    assert sink.write_batch(entries(range(1))) is Delivery.ERRORED
    sink.close()
