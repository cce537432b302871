"""The syslog sink: RFC 5424 messages over TCP (TLS as an option), octet-counted as RFC 6587 says.

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID - MSG      framed as   LEN SP MESSAGE

PRI is `facility * 8 + severity` (the event's severity: CRITICAL -> crit ... INFO -> info); TIMESTAMP is
the event's, in UTC with microseconds; HOSTNAME the event's `node_id` or this host's name; MSGID the
event type; MSG the event as JSON, or as CEF (cef.py). Octet counting, not a trailing newline, ends
each message, so a message may contain anything, line breaks included. There is no BOM before MSG:
rsyslog, syslog-ng and Splunk would keep it as part of the text.

A batch is DELIVERED once the kernel has taken all of its bytes. TCP syslog has no acknowledgement,
so a connection the server closes can lose what was sent just before the close was noticed; the sink
narrows that window by checking, before each batch, that the server has not closed the connection
(it never writes to us, so anything readable means it did). RELP closes the window for good; it is not
in this release. A failed send closes the connection and the batch is retried whole (at-least-once).
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from auditship.agents.config import AgentConfig
from auditship.agents.sinks.base import BuiltSink, Delivery, Entry, Sink
from auditship.agents.sinks.syslog.cef import encode_cef
from auditship.agents.sinks.syslog.config import SyslogSinkConfig
from auditship.agents.sinks.tls import client_context
from shipper.event import AuditEvent, AuditSeverity

logger = logging.getLogger("auditship.sinks.syslog")

SYSLOG_SEVERITY = {
    AuditSeverity.CRITICAL: 2,
    AuditSeverity.HIGH: 3,
    AuditSeverity.MEDIUM: 4,
    AuditSeverity.LOW: 5,
    AuditSeverity.INFO: 6,
}
NIL = "-"


class SyslogSink(Sink):
    name = "syslog"

    def __init__(self, config: SyslogSinkConfig) -> None:
        self._config = config
        self._payload: Callable[[AuditEvent], bytes] = (
            encode_cef if config.payload == "cef" else msgspec.json.Encoder().encode
        )
        self._host = header_word(socket.gethostname(), 255)
        self._app = header_word(config.app_name, 48)
        self._tls = client_context(config.verify_tls, config.ca_file) if config.tls else None
        self._socket: socket.socket | None = None

    def open(self) -> None:
        # The first batch connects: a server that is down must not stop the worker.
        pass

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def write_batch(self, batch: list[Entry]) -> Delivery:
        data = b"".join(frame(self.message(entry.event)) for entry in batch)
        try:
            self._connected().sendall(data)
        except OSError as exc:  # refused, reset, timed out, TLS failures (ssl.SSLError is an OSError)
            logger.warning(
                "syslog sink: sending batch %d-%d to %s:%d failed (%s); it stays in the WAL",
                batch[0].lsn,
                batch[-1].lsn,
                self._config.host,
                self._config.port,
                exc,
            )
            self.close()
            return Delivery.ERRORED
        return Delivery.DELIVERED

    def message(self, event: AuditEvent) -> bytes:
        """One RFC 5424 message, without its frame."""
        pri = self._config.facility * 8 + SYSLOG_SEVERITY[event.severity]
        host = header_word(event.node_id, 255) if event.node_id else self._host
        msgid = header_word(event.event_type.value, 32)
        head = f"<{pri}>1 {timestamp(event.timestamp)} {host} {self._app} {NIL} {msgid} {NIL} "
        return head.encode() + self._payload(event)

    def _connected(self) -> socket.socket:
        if self._socket is not None and _closed_by_peer(self._socket, self._config.timeout_s):
            logger.info("syslog sink: %s:%d closed the connection; reconnecting", *self._address)
            self.close()
        if self._socket is None:
            sock = socket.create_connection(self._address, timeout=self._config.timeout_s)
            if self._tls is not None:
                try:
                    sock = self._tls.wrap_socket(sock, server_hostname=self._config.host)
                except OSError:
                    sock.close()
                    raise
            self._socket = sock
        return self._socket

    @property
    def _address(self) -> tuple[str, int]:
        return self._config.host, self._config.port


def frame(message: bytes) -> bytes:
    """RFC 6587 octet counting: the message's length in bytes, a space, the message."""
    return b"%d %s" % (len(message), message)


def timestamp(moment: datetime) -> str:
    """RFC 5424 TIMESTAMP: RFC 3339 in UTC, with microseconds."""
    if moment.tzinfo is None:  # the event model says UTC; a naive value is taken to be UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def header_word(value: str, limit: int) -> str:
    """A header field as RFC 5424 allows it: printable US-ASCII without spaces, at most `limit` long;
    anything else becomes `_`, and an empty value NILVALUE."""
    word = "".join(char if "!" <= char <= "~" else "_" for char in value[:limit])
    return word or NIL


def _closed_by_peer(sock: socket.socket, timeout_s: float) -> bool:
    """Whether the server has closed (or reset) the connection. A syslog server never sends, so
    any end of file or error means the connection is gone; "nothing to read" means it is alive."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except (BlockingIOError, ssl.SSLWantReadError):
        return False  # SSLWantReadError: only TLS housekeeping (a session ticket) was there to read
    except OSError:
        return True
    finally:
        sock.settimeout(timeout_s)


def build(config: AgentConfig) -> BuiltSink:
    settings = config.sinks.syslog
    return BuiltSink(SyslogSink(settings), settings.batch_size, settings.flush_interval_s)
