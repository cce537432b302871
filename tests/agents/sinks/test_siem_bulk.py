"""The SIEM sink against a real HTTP server speaking Elasticsearch's `_bulk`."""

from __future__ import annotations

from collections.abc import Callable

from auditship.agents.sinks.base import Delivery, Refused
from auditship.agents.sinks.siem.sink import SiemSink
from tests.agents.sinks.entries import entries
from tests.siem_server import ServedSiem

OpenSink = Callable[..., SiemSink]


def test_each_event_is_created_in_the_index_with_its_event_id_as_the_document_id(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    sink = open_siem_sink("elasticsearch", index="audit-events")
    batch = entries(range(20))
    assert sink.write_batch(batch) is Delivery.DELIVERED
    docs = siem.siem.docs
    assert list(docs) == [entry.event.event_id for entry in batch]
    assert all(doc["event_id"] == doc_id for doc_id, doc in docs.items())
    assert docs[batch[3].event.event_id]["details"] == {"n": 3}


def test_a_replayed_batch_answers_409_per_item_and_counts_as_delivered(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    """After a crash the runner offers the same batch again: the index keeps one copy, nothing is refused."""
    batch = entries(range(10))
    assert open_siem_sink("elasticsearch").write_batch(batch) is Delivery.DELIVERED
    assert open_siem_sink("elasticsearch").write_batch(batch) is Delivery.DELIVERED
    assert len(siem.siem.docs) == 10
    assert len(siem.siem.requests) == 2


def test_only_the_items_that_failed_are_sent_again(siem: ServedSiem, open_siem_sink: OpenSink) -> None:
    """Two items answer 429 inside a 200: the retry carries those two, not the batch."""
    batch = entries(range(10))
    throttled = [batch[3].event.event_id, batch[7].event.event_id]
    siem.siem.throttle_ids = dict.fromkeys(throttled, 1)
    sink = open_siem_sink("elasticsearch")
    assert sink.write_batch(batch) is Delivery.ERRORED
    assert sink.write_batch(batch) is Delivery.DELIVERED
    assert siem.siem.requests[1].event_ids == throttled
    assert set(siem.siem.docs) == {entry.event.event_id for entry in batch}


def test_an_errored_attempt_says_whether_it_settled_part_of_the_batch(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    """`progressed` is what lets the runner start its backoff afresh: true when some items were taken
    though others were throttled, false when a retry of the throttled one is throttled again."""
    batch = entries(range(6))
    siem.siem.throttle_ids = {batch[4].event.event_id: 2}
    sink = open_siem_sink("elasticsearch")
    assert sink.write_batch(batch) is Delivery.ERRORED
    assert sink.progressed
    assert sink.write_batch(batch) is Delivery.ERRORED
    assert not sink.progressed
    assert sink.write_batch(batch) is Delivery.DELIVERED


def test_items_refused_for_good_are_returned_with_their_error_and_the_rest_is_delivered(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    batch = entries(range(6))
    siem.siem.refuse_ids = {batch[2].event.event_id}
    outcome = open_siem_sink("elasticsearch").write_batch(batch)
    assert isinstance(outcome, Refused)
    assert outcome.entries == [batch[2]]
    assert "400 mapper_parsing_exception: failed to parse field [details]" in outcome.reasons[0]
    assert set(siem.siem.docs) == {entry.event.event_id for entry in batch} - {batch[2].event.event_id}


def test_a_refusal_and_a_throttle_in_one_batch_settle_separately(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    """The refused item is remembered while the throttled one is retried; the batch ends Refused(one)."""
    batch = entries(range(6))
    siem.siem.refuse_ids = {batch[1].event.event_id}
    siem.siem.throttle_ids = {batch[4].event.event_id: 2}
    sink = open_siem_sink("elasticsearch")
    assert sink.write_batch(batch) is Delivery.ERRORED
    assert sink.write_batch(batch) is Delivery.ERRORED
    outcome = sink.write_batch(batch)
    assert isinstance(outcome, Refused)
    assert outcome.entries == [batch[1]]
    assert [request.event_ids for request in siem.siem.requests[1:]] == [[batch[4].event.event_id]] * 2


def test_a_wrong_api_key_refuses_the_batch(siem: ServedSiem, open_siem_sink: OpenSink) -> None:
    outcome = open_siem_sink("elasticsearch", api_key="wrong").write_batch(entries(range(3)))
    assert isinstance(outcome, Refused)
    assert len(outcome.entries) == 3
    assert "HTTP 403" in outcome.reasons[0]
