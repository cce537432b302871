"""Splunk HTTP Event Collector: `POST /services/collector/event`, `Authorization: Splunk <token>`.

A request's body is its events' envelopes one after another (`{"time":..,"host":..,"source":..,
"sourcetype":..,"index":..,"event":{..}}`), one per line. Statuses are read as classify.py says:
HEC's "server is busy" (code 9) and "unhealthy" (codes 18-20) are 503s and are retried; a 400 (bad
index, bad channel, invalid data, even with `invalid-event-number`) refuses the whole request, since
the events all share the same settings and our encoder writes only valid JSON.

With `hec_ack = true` (indexer acknowledgement) the 200 only says HEC has the events in memory: the
request counts as delivered once `/services/collector/ack` says its `ackId` was indexed. The sink polls
for it, with growing pauses, for up to `hec_ack_timeout_s`; then the request is sent again (Splunk's own
advice: a duplicate is better than a loss). Ack ids belong to a channel, a random GUID per sink process.

Idempotence: HEC has none. It takes no key for an event, so a request sent again (after a timeout, an
ack that did not come, or a crash of the sink before its cursor moved) is indexed again: at-least-once.
Acknowledgement narrows the window (a request counts as delivered only once indexed) but cannot close
it. A repeat carries the same event, `event_id` included; but event ids are the sender's to choose, so
a search that drops repeats by `event_id` alone may also drop a real event sent under a forged id.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid

import httpx
import msgspec

from auditship.agents.sinks.base import Delivery, Entry
from auditship.agents.sinks.siem.classify import (
    BATCH_ID_HEADER,
    Reply,
    describe,
    outcome_of_status,
    reply_to,
    transport_failure,
)
from auditship.agents.sinks.siem.config import SiemSinkConfig
from auditship.agents.sinks.siem.payload import PayloadEncoder

logger = logging.getLogger("auditship.sinks.siem")

ACK_POLL_FIRST_S = 0.02
ACK_POLL_MAX_S = 1.0
CHANNEL_HEADER = "X-Splunk-Request-Channel"


class _Answer(msgspec.Struct):
    text: str = ""
    code: int = 0
    ackId: int | None = None  # HEC's spelling


class _Acks(msgspec.Struct):
    acks: dict[str, bool]


_json = msgspec.json.Encoder()
_answer_decoder = msgspec.json.Decoder(_Answer)
_acks_decoder = msgspec.json.Decoder(_Acks)


def base_url(endpoint: str) -> str:
    """The collector's base URL, whether the config names it or one of its endpoints."""
    base = endpoint.rstrip("/")
    for suffix in ("/services/collector/event", "/services/collector"):
        base = base.removesuffix(suffix)
    return base


class SplunkHec:
    def __init__(self, config: SiemSinkConfig, payload: PayloadEncoder) -> None:
        self._config = config
        self._payload = payload
        self._host = _json.encode(socket.gethostname())
        # An envelope is {"time":..,"host":..,"source":..,"sourcetype":..[,"index":..],"event":{..}}:
        # what every envelope repeats is encoded once, and each is built by one bytes format, a third
        # of the cost of a struct encoded around the event's own encoding.
        index = b',"index":%b' % _json.encode(config.index) if config.index else b""
        self._settings = b',"source":%b,"sourcetype":%b%b,"event":' % (
            _json.encode(config.source),
            _json.encode(config.sourcetype),
            index,
        )
        base = base_url(config.endpoint)
        self._event_url = f"{base}/services/collector/event"
        self._ack_url = f"{base}/services/collector/ack"
        self.headers = {"Authorization": f"Splunk {config.api_key}", CHANNEL_HEADER: str(uuid.uuid4())}
        self._told_no_ack = False

    def item(self, entry: Entry) -> bytes:
        event = entry.event
        host = _json.encode(event.node_id) if event.node_id else self._host
        seconds = event.timestamp.timestamp()
        return b'{"time":%.3f,"host":%b%b%b}\n' % (seconds, host, self._settings, self._payload(event))

    def send(self, client: httpx.Client, items: list[bytes], batch_id: str) -> Reply:
        response = client.post(
            self._event_url,
            content=b"".join(items),
            headers={"Content-Type": "application/json", BATCH_ID_HEADER: batch_id},
        )
        reply = reply_to(response)
        if reply.outcome is not Delivery.DELIVERED or not self._config.hec_ack:
            return reply
        try:
            ack_id = _answer_decoder.decode(response.content).ackId
        except msgspec.DecodeError:
            ack_id = None
        if ack_id is None:
            # The token has acknowledgement off: the 200 is all HEC will ever say.
            if not self._told_no_ack:
                self._told_no_ack = True
                logger.warning(
                    "siem sink: hec_ack is on but HEC answers without an ackId (%s): is indexer "
                    "acknowledgement enabled on the token? Requests count as delivered on their 200",
                    response.text,
                )
            return reply
        return self._await_ack(client, ack_id)

    def _await_ack(self, client: httpx.Client, ack_id: int) -> Reply:
        """Ask until HEC says `ack_id` is indexed, for at most `hec_ack_timeout_s`; then ERRORED, and
        the request is sent again. The pauses are part of the delivery, not a backoff."""
        deadline = time.monotonic() + self._config.hec_ack_timeout_s
        pause = ACK_POLL_FIRST_S
        while True:  # bounded by the deadline
            answer = self._ask(client, ack_id)
            if isinstance(answer, Reply):
                return answer
            if time.monotonic() + pause > deadline:
                waited = self._config.hec_ack_timeout_s
                return Reply(Delivery.ERRORED, f"ackId {ack_id} not acknowledged in {waited}s ({answer})")
            time.sleep(pause)
            pause = min(pause * 2, ACK_POLL_MAX_S)

    def _ask(self, client: httpx.Client, ack_id: int) -> Reply | str:
        """Whether HEC has indexed `ack_id`: a final Reply (DELIVERED; ERRORED when only sending the
        request again can help), or what HEC said instead, to ask again."""
        try:
            response = client.post(self._ack_url, json={"acks": [ack_id]})
        except httpx.HTTPError as exc:  # no answer this time: ask again
            return transport_failure(exc).reason
        outcome = outcome_of_status(response.status_code)
        if outcome is Delivery.REJECTED:
            # An unknown channel or ack id (HEC restarted and forgot them): only resending helps.
            return Reply(Delivery.ERRORED, f"acknowledgement of ackId {ack_id}: {describe(response)}")
        if outcome is Delivery.ERRORED:  # busy
            return describe(response)
        try:
            indexed = _acks_decoder.decode(response.content).acks.get(str(ack_id), False)
        except msgspec.DecodeError:
            return describe(response)
        return Reply(Delivery.DELIVERED) if indexed else "not indexed yet"
