"""The SIEM sink against a real HTTP server speaking Elasticsearch's `_bulk`."""

from __future__ import annotations

from collections.abc import Callable

from auditship.agents.sinks.base import Delivery, Entry, Refused
from auditship.agents.sinks.siem.sink import SiemSink
from auditship.agents.wal.identity import record_id
from tests.agents.sinks.entries import WAL_ID, entries, event
from tests.siem_server import ServedSiem

OpenSink = Callable[..., SiemSink]


def doc_id(entry: Entry) -> str:
    """The document id the sink gives the entry's event: its WAL record, `<WAL id>-<LSN>`."""
    return record_id(WAL_ID, entry.lsn)


def test_each_event_is_created_in_the_index_with_its_wal_record_as_the_document_id(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    sink = open_siem_sink("elasticsearch", index="audit-events")
    batch = entries(range(1, 21))
    assert sink.write_batch(batch) is Delivery.DELIVERED
    docs = siem.siem.docs
    assert list(docs) == [f"{WAL_ID}-{n}" for n in range(1, 21)]
    assert [doc["event_id"] for doc in docs.values()] == [entry.event.event_id for entry in batch]
    assert docs[doc_id(batch[3])]["details"] == {"n": 4}


def test_an_event_sent_first_under_another_events_id_does_not_keep_the_real_one_out(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    """Issue 13: a forger who sends an event under the id of one to come (a leaked or replayed id) no
    longer pre-empts it: both are documents, found by their event_id."""
    real = event(1, user_id="alice", message="real")
    forged = event(2, user_id="mallory", message="forged", event_id=real.event_id)
    sink = open_siem_sink("elasticsearch")
    assert sink.write_batch([Entry(7, forged)]) is Delivery.DELIVERED
    assert sink.write_batch([Entry(8, real)]) is Delivery.DELIVERED
    stored = [doc for doc in siem.siem.docs.values() if doc["event_id"] == real.event_id]
    assert sorted(doc["message"] for doc in stored) == ["forged", "real"]


def test_two_agents_writing_one_index_do_not_collide(siem: ServedSiem, open_siem_sink: OpenSink) -> None:
    """Each WAL counts from 1; its identity keeps one agent's record 5 from being taken for another's."""
    batch = entries(range(1, 6))
    assert open_siem_sink("elasticsearch").write_batch(batch) is Delivery.DELIVERED
    other = open_siem_sink("elasticsearch", wal_id="f" * 32)
    assert other.write_batch(batch) is Delivery.DELIVERED
    assert len(siem.siem.docs) == 10


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
    throttled = [doc_id(batch[3]), doc_id(batch[7])]
    siem.siem.throttle_ids = dict.fromkeys(throttled, 1)
    sink = open_siem_sink("elasticsearch")
    assert sink.write_batch(batch) is Delivery.ERRORED
    assert sink.write_batch(batch) is Delivery.DELIVERED
    assert siem.siem.requests[1].event_ids == throttled
    assert set(siem.siem.docs) == {doc_id(entry) for entry in batch}


def test_an_errored_attempt_says_whether_it_settled_part_of_the_batch(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    """`progressed` is what lets the runner start its backoff afresh: true when some items were taken
    though others were throttled, false when a retry of the throttled one is throttled again."""
    batch = entries(range(6))
    siem.siem.throttle_ids = {doc_id(batch[4]): 2}
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
    siem.siem.refuse_ids = {doc_id(batch[2])}
    outcome = open_siem_sink("elasticsearch").write_batch(batch)
    assert isinstance(outcome, Refused)
    assert outcome.entries == [batch[2]]
    assert "400 mapper_parsing_exception: failed to parse field [details]" in outcome.reasons[0]
    assert set(siem.siem.docs) == {doc_id(entry) for entry in batch} - {doc_id(batch[2])}


def test_a_refusal_and_a_throttle_in_one_batch_settle_separately(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    """The refused item is remembered while the throttled one is retried; the batch ends Refused(one)."""
    batch = entries(range(6))
    siem.siem.refuse_ids = {doc_id(batch[1])}
    siem.siem.throttle_ids = {doc_id(batch[4]): 2}
    sink = open_siem_sink("elasticsearch")
    assert sink.write_batch(batch) is Delivery.ERRORED
    assert sink.write_batch(batch) is Delivery.ERRORED
    outcome = sink.write_batch(batch)
    assert isinstance(outcome, Refused)
    assert outcome.entries == [batch[1]]
    assert [request.event_ids for request in siem.siem.requests[1:]] == [[doc_id(batch[4])]] * 2


def test_a_wrong_api_key_refuses_the_batch(siem: ServedSiem, open_siem_sink: OpenSink) -> None:
    outcome = open_siem_sink("elasticsearch", api_key="wrong").write_batch(entries(range(3)))
    assert isinstance(outcome, Refused)
    assert len(outcome.entries) == 3
    assert "HTTP 403" in outcome.reasons[0]
