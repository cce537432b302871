"""The SIEM sink's generic format against a real HTTP server: a JSON array with an API key header."""

from __future__ import annotations

from collections.abc import Callable

from auditship.agents.crypto import Keyring
from auditship.agents.sinks.base import Delivery, Refused
from auditship.agents.sinks.siem.sink import SiemSink, batch_id
from tests.agents.sinks.entries import SECRET, WAL_ID, entries
from tests.siem_server import ServedSiem

OpenSink = Callable[..., SiemSink]


def test_a_batch_is_posted_as_a_json_array_with_the_api_key_and_a_batch_id(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    batch = entries(range(7))
    assert open_siem_sink("generic").write_batch(batch) is Delivery.DELIVERED
    assert [e["event_id"] for e in siem.siem.generic_events] == [entry.event.event_id for entry in batch]
    assert siem.siem.requests[0].batch_id == batch_id(WAL_ID, batch)


def test_the_api_key_header_is_configurable(siem: ServedSiem, open_siem_sink: OpenSink) -> None:
    """The server wants X-API-Key; a sink sending another header is refused (403)."""
    outcome = open_siem_sink("generic", api_key_header="X-Other-Key").write_batch(entries(range(2)))
    assert isinstance(outcome, Refused)


def test_a_malformed_request_answer_goes_to_dead_letters_with_the_response(
    siem: ServedSiem, open_siem_sink: OpenSink
) -> None:
    siem.siem.answer_next(1, 400, body={"error": "field 'event_type' is not allowed here"})
    outcome = open_siem_sink("generic").write_batch(entries(range(2)))
    assert isinstance(outcome, Refused)
    assert "HTTP 400" in outcome.reasons[0]
    assert "field 'event_type' is not allowed here" in outcome.reasons[0]


def test_sensitive_values_leave_encrypted(
    siem: ServedSiem, open_siem_sink: OpenSink, keyring: Keyring
) -> None:
    """The sink never decrypts: the SIEM receives the intake's envelopes."""
    batch = entries(range(2), keyring, sensitive={"ssn": SECRET})
    assert open_siem_sink("generic").write_batch(batch) is Delivery.DELIVERED
    values = [event["sensitive"]["ssn"] for event in siem.siem.generic_events]
    assert all(value.startswith("aesgcm2:") and SECRET not in value for value in values)
