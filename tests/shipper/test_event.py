"""The event model: every AuditEvent, built or decoded, holds its timestamp in UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import msgspec

from shipper.event import AuditEvent, AuditEventType, new_event_id
from shipper.wire import Frame, frame_decoder, frame_encoder


def test_a_naive_timestamp_is_taken_as_utc_when_the_event_is_built() -> None:
    """`datetime.utcnow()`-style values keep their wall time and become UTC, so they can be compared with
    the clock."""
    event = AuditEvent(event_type=AuditEventType.HEARTBEAT, timestamp=datetime(2026, 3, 1, 12, 30))
    assert event.timestamp == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert event.timestamp.tzinfo is UTC
    assert datetime.now(UTC) - event.timestamp > timedelta(0)


def test_an_aware_timestamp_is_converted_to_the_same_instant_in_utc() -> None:
    """+02:00 noon is 10:00 UTC."""
    moment = datetime(2026, 3, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    event = AuditEvent(event_type=AuditEventType.HEARTBEAT, timestamp=moment)
    assert event.timestamp == moment
    assert event.timestamp.tzinfo is UTC
    assert event.timestamp.hour == 10


def test_a_naive_timestamp_on_the_wire_is_utc_once_decoded() -> None:
    """msgspec sends a naive datetime as a string without an offset (an older emitter did): decoding
    gives UTC."""
    raw = msgspec.msgpack.encode(["e", 1, 1, {"event_type": "heartbeat", "timestamp": "2026-03-01T12:30:00"}])
    assert frame_decoder.decode(raw).event.timestamp == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def test_a_timestamp_with_no_utc_instant_in_years_1_to_9999_is_left_for_the_intake_to_refuse() -> None:
    """Year 1 at +14:00 is in year 0 in UTC: building the event does not raise into the service; the value
    stays as it was, not in UTC, and the intake refuses such an event with its reason."""
    moment = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
    assert AuditEvent(event_type=AuditEventType.HEARTBEAT, timestamp=moment).timestamp is moment


def test_an_event_round_trips_through_a_frame_with_its_timestamp_unchanged() -> None:
    """The default timestamp is UTC already, and decoding gives back the same instant in UTC."""
    event = AuditEvent(event_type=AuditEventType.HEARTBEAT)
    assert frame_decoder.decode(frame_encoder.encode(Frame("e", 1, 1, event))).event == event


def test_event_ids_are_time_ordered_and_cannot_be_guessed_from_the_one_before() -> None:
    """An id starts with its millisecond (ids sort by creation time); the 80 bits after it are random, so
    the id after a known one shares nothing with it but the time: no one can claim it in advance."""
    before_ms = time.time_ns() // 1_000_000
    ids = [new_event_id() for _ in range(1_000)]
    after_ms = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert all(len(id_) == 32 and int(id_, 16) >= 0 for id_ in ids)
    assert all(before_ms <= int(id_[:12], 16) <= after_ms for id_ in ids)
    assert [id_[:12] for id_ in ids] == sorted(id_[:12] for id_ in ids)
    tails = [int(id_[12:], 16) for id_ in ids]
    # Consecutive random parts differ in about half of their 80 bits; a counter would differ in a few.
    flipped = [bin(a ^ b).count("1") for a, b in pairwise(tails)]
    assert 30 <= sum(flipped) / len(flipped) <= 50
