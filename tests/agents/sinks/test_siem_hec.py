"""The SIEM sink against a real HTTP server speaking Splunk HEC."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from auditship.agents.sinks.base import Delivery, Refused
from auditship.agents.sinks.siem.sink import SiemSink, batch_id
from tests.agents.sinks.entries import WAL_ID, entries
from tests.siem_server import FakeSiem, ServedSiem

OpenSink = Callable[..., SiemSink]


def test_a_batch_is_one_request_of_envelopes_with_time_host_source_sourcetype_and_index(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    """Fifty events go in one request, each in HEC's envelope, the event itself under `event`."""
    sink = open_siem_sink(index="audit", source="billing", sourcetype="auditship:test")
    batch = entries(range(1, 51), node_id="web-1")
    assert sink.write_batch(batch) is Delivery.DELIVERED
    assert len(siem.siem.requests) == 1
    assert siem.siem.requests[0].batch_id == batch_id(WAL_ID, batch)
    received = siem.siem.hec_events
    assert [e["event"]["event_id"] for e in received] == [entry.event.event_id for entry in batch]
    first = received[0]
    assert first["time"] == pytest.approx(batch[0].event.timestamp.timestamp(), abs=0.001)
    assert (first["host"], first["source"], first["sourcetype"], first["index"]) == (
        "web-1",
        "billing",
        "auditship:test",
        "audit",
    )
    assert first["event"]["event_type"] == "data_read"


def test_an_envelope_without_index_or_node_id_carries_this_host_and_settings_as_json(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    """No `index`: none in the envelope (the token's default applies); no node_id: this host's name;
    a setting with quotes and a backslash arrives as it was written."""
    sink = open_siem_sink(source='app "billing" \\ v2')
    assert sink.write_batch(entries(range(1, 3))) is Delivery.DELIVERED
    first = siem.siem.hec_events[0]
    assert "index" not in first
    assert first["host"] == socket.gethostname()
    assert first["source"] == 'app "billing" \\ v2'
    assert first["sourcetype"] == "auditship:event"


def test_requests_are_cut_at_max_batch_bytes_and_keep_the_order(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    """A batch larger than max_batch_bytes becomes several requests, none larger than the limit."""
    sink = open_siem_sink(max_batch_bytes=2_000)
    batch = entries(range(30))
    assert sink.write_batch(batch) is Delivery.DELIVERED
    requests = siem.siem.requests
    assert len(requests) > 3
    assert all(request.size <= 2_000 for request in requests)
    assert [i for request in requests for i in request.event_ids] == [e.event.event_id for e in batch]


def test_requests_carry_at_most_batch_size_events(siem: ServedSiem, open_siem_sink: OpenSink) -> None:
    """The runner hands over several requests' worth at once (one cursor commit); each request carries
    at most `batch_size` events, as the seed's batch_size meant."""
    sink = open_siem_sink(batch_size=10)
    assert sink.write_batch(entries(range(25))) is Delivery.DELIVERED
    assert [len(request.event_ids) for request in siem.siem.requests] == [10, 10, 5]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, {"text": "Server is busy", "code": 9}),
        (503, {"text": "HEC is unhealthy, queues are full", "code": 18}),
        (500, {"text": "Internal server error", "code": 8}),
        (408, {"text": "Request timeout"}),
    ],
)
def test_busy_unhealthy_and_failing_answers_are_retried_and_then_everything_arrives_once(
    siem: ServedSiem, open_siem_sink: OpenSink, status: int, body: dict[str, object]
) -> None:
    """These answers leave the batch in the WAL (ERRORED); the retry delivers it, nothing is refused."""
    sink = open_siem_sink()
    siem.siem.answer_next(2, status, body=body)
    batch = entries(range(10))
    assert sink.write_batch(batch) is Delivery.ERRORED
    assert sink.write_batch(batch) is Delivery.ERRORED
    assert sink.write_batch(batch) is Delivery.DELIVERED
    assert [e["event"]["event_id"] for e in siem.siem.hec_events] == [e.event.event_id for e in batch]


def test_429_with_retry_after_is_retried_no_sooner_than_asked(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    """The sink hands Retry-After to the runner, which waits at least that long."""
    sink = open_siem_sink()
    siem.siem.answer_next(1, 429, retry_after="7", body={"text": "Too many requests"})
    batch = entries(range(3))
    assert sink.write_batch(batch) is Delivery.ERRORED
    assert sink.retry_after_s == 7.0
    assert sink.write_batch(batch) is Delivery.DELIVERED
    assert sink.retry_after_s == 0.0


def test_a_bad_token_refuses_the_whole_batch_with_the_response_as_the_reason(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    """Retrying cannot fix a token: every event goes to dead letters, the response in the reason."""
    sink = open_siem_sink(api_key="not-the-token")
    batch = entries(range(4))
    outcome = sink.write_batch(batch)
    assert isinstance(outcome, Refused)
    assert outcome.entries == batch
    assert all("HTTP 403" in reason and "Invalid token" in reason for reason in outcome.reasons)
    assert siem.siem.hec_events == []


def test_a_collector_that_is_not_listening_leaves_the_batch_in_the_wal(open_siem_sink: OpenSink) -> None:
    """Connection refused is transient: ERRORED, not refused."""
    down = ServedSiem(FakeSiem())  # bound, never started: connections are refused
    try:
        sink = open_siem_sink(endpoint=down.url)
        assert sink.write_batch(entries(range(2))) is Delivery.ERRORED
    finally:
        down.stop()


def test_a_timed_out_request_is_sent_again_with_the_same_batch_id(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    """The first answer comes after the sink's timeout: the retry carries the same batch id, so a
    receiver can recognise the repeat."""
    sink = open_siem_sink(timeout_s=0.3)
    siem.siem.slow_next(1, 1.0)
    batch = entries(range(5))
    assert sink.write_batch(batch) is Delivery.ERRORED
    assert sink.write_batch(batch) is Delivery.DELIVERED
    seen = siem.siem.requests
    assert len(seen) == 2
    assert seen[0].batch_id == seen[1].batch_id == batch_id(WAL_ID, batch)


def test_with_acknowledgement_a_batch_counts_only_once_hec_acknowledges_it(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    """While HEC withholds the ack the batch is not delivered (it is sent again); once HEC acks, it is."""
    siem.siem.ack = True
    siem.siem.acks_withheld = True
    sink = open_siem_sink(hec_ack=True, hec_ack_timeout_s=0.3)
    batch = entries(range(5))
    assert sink.write_batch(batch) is Delivery.ERRORED
    assert siem.siem.ack_polls >= 2
    siem.siem.acks_withheld = False
    assert sink.write_batch(batch) is Delivery.DELIVERED


def test_with_the_ocsf_payload_each_envelope_carries_an_ocsf_event(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    batch = entries(range(3))
    assert open_siem_sink(payload="ocsf").write_batch(batch) is Delivery.DELIVERED
    events = [envelope["event"] for envelope in siem.siem.hec_events]
    assert [event["metadata"]["uid"] for event in events] == [entry.event.event_id for entry in batch]
    assert {(event["class_uid"], event["type_uid"]) for event in events} == {(6001, 600102)}
