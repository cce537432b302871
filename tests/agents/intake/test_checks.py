"""The intake's checks of a decoded event: its timestamp is one the lake holds, its maps hold only what
JSON can, nested no deeper than MAX_NESTING, its integers fit their columns and its service name makes
a directory name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from sqlalchemy import BigInteger, Integer

from auditship.agents.intake.checks import MAX_NESTING, refusal
from auditship.agents.sinks.sql.schema import events_table
from shipper.event import AuditEvent, AuditEventType
from shipper.wire import Frame, frame_decoder, frame_encoder


def nested(depth: int) -> Any:
    """`depth` lists, one inside the other."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def decoded(**fields: Any) -> AuditEvent:
    """An event as the intake sees it: encoded by an emitter, decoded from the frame."""
    event = AuditEvent(event_type=AuditEventType.DATA_READ, **fields)
    return frame_decoder.decode(frame_encoder.encode(Frame("e", 1, 1, event))).event


def raw_event(event: dict[str, Any]) -> AuditEvent:
    """An event decoded from a frame built by hand, as a sender other than an emitter could build it."""
    return frame_decoder.decode(msgspec.msgpack.encode(["e", 1, 1, event])).event


def test_an_ordinary_event_is_accepted() -> None:
    """Flat maps, nested ones, bytes, a datetime, numbers as keys: all things JSON holds."""
    event = decoded(
        details={"route": "/x", "n": 1, "ok": True, "none": None, "raw": b"\x00", "at": datetime.now(UTC)},
        changes={"before": {"roles": ["a", "b"]}, "after": {"roles": ["a"], "by_id": {1: "x", 2.5: "y"}}},
        sensitive={"card": "4111"},
    )
    assert refusal(event) is None


def test_maps_nested_as_deep_as_the_limit_are_accepted_and_one_level_more_is_refused() -> None:
    """MAX_NESTING lists inside `details` pass; one more is refused, naming the field and the limit."""
    assert refusal(decoded(details={"deep": nested(MAX_NESTING)})) is None
    reason = refusal(decoded(changes={"deep": nested(MAX_NESTING + 1)}))
    assert reason is not None
    assert f"changes: nested more than {MAX_NESTING} maps or lists deep" in reason


def test_a_timestamp_whose_utc_instant_is_outside_years_1_to_9999_is_refused() -> None:
    """Year 1 at +14:00 and year 9999 at -14:00 cannot be held in UTC: refused with the value. The
    extremes in UTC themselves are accepted."""
    for text in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        reason = refusal(raw_event({"event_type": "data_read", "timestamp": text}))
        assert reason is not None
        assert (
            f"timestamp {datetime.fromisoformat(text).isoformat()} is outside years 1-9999 in UTC" in reason
        )
    for text in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "0001-01-01T14:00:00+14:00"):
        assert refusal(raw_event({"event_type": "data_read", "timestamp": text})) is None


def test_a_naive_timestamp_is_accepted_as_utc() -> None:
    """A naive time (an older emitter's `datetime.utcnow()`) is UTC once decoded, and accepted."""
    event = raw_event({"event_type": "data_read", "timestamp": "2026-03-01T12:00:00"})
    assert event.timestamp == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert refusal(event) is None


def test_values_json_cannot_hold_are_refused_with_the_field_named() -> None:
    """A msgpack extension value, and map keys that are a tuple (a msgpack array), a bool or nil."""
    ext = msgspec.msgpack.Ext(5, b"\x01")
    reason = refusal(raw_event({"event_type": "data_read", "details": {"x": ext}}))
    assert reason is not None
    assert "details: a value of type Ext, which JSON cannot hold" in reason
    for key, kind in (((1, 2), "tuple"), (True, "bool"), (None, "NoneType")):
        reason = refusal(decoded(sensitive={"x": {key: "v"}}))
        assert reason is not None
        assert f"sensitive: a map key of type {kind}, which JSON cannot hold" in reason


def test_lists_of_plain_values_are_accepted_and_one_holding_what_json_cannot_is_refused() -> None:
    """The one-pass check of a map of plain values and lists of them lets nothing through that the
    walk refuses: an extension value in a list, in the map that is not flat after one that is."""
    assert refusal(decoded(details={"fields": ["diagnosis", 1, None], "none": []})) is None
    ext = msgspec.msgpack.Ext(5, b"\x01")
    event = {"event_type": "data_read", "details": {"n": 1}, "changes": {"fields": ["a", ext]}}
    reason = refusal(raw_event(event))
    assert reason is not None
    assert "changes: a value of type Ext, which JSON cannot hold" in reason


def test_a_refusal_names_the_event_and_the_keys_type_but_not_the_key() -> None:
    """A key may be a sensitive value, and reasons are logged: its type is named, not its value."""
    event = decoded(sensitive={"x": {(4111, 1111): "v"}})
    assert (
        refusal(event)
        == f"event {event.event_id}: sensitive: a map key of type tuple, which JSON cannot hold"
    )


def test_an_aware_timestamp_is_held_in_utc() -> None:
    """+02:00 becomes the same instant in UTC, which the check accepts."""
    event = raw_event({"event_type": "data_read", "timestamp": "2026-03-01T12:00:00+02:00"})
    assert event.timestamp == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert event.timestamp.tzinfo is UTC
    assert refusal(event) is None


@pytest.mark.parametrize(
    ("field", "low", "high", "kind"),
    [
        ("status_code", -(2**31), 2**31 - 1, "INTEGER"),
        ("schema_version", -(2**31), 2**31 - 1, "INTEGER"),
        ("request_size", -(2**63), 2**63 - 1, "BIGINT"),
        ("response_size", -(2**63), 2**63 - 1, "BIGINT"),
    ],
)
def test_an_integer_wider_than_its_column_is_refused_naming_the_field_and_its_bounds(
    field: str, low: int, high: int, kind: str
) -> None:
    """msgpack carries up to 64 bits unsigned: the bounds themselves pass, one past either is refused,
    and the reason names the field, the value and the column's range."""
    for fits in (low, high):
        assert refusal(raw_event({"event_type": "data_read", field: fits})) is None
    for value in (low - 1, high + 1):
        if not -(2**63) <= value < 2**64:
            continue  # past what msgpack can carry at all
        event = raw_event({"event_type": "data_read", field: value})
        expected = f"{field} = {value} does not fit the lake's {kind} column ({low} to {high})"
        assert refusal(event) == f"event {event.event_id}: {expected}"


def test_the_sql_sink_columns_have_the_widths_the_intake_checks() -> None:
    """The intake's bounds are the lake's types; the SQL table's integer columns are the same widths."""
    table = events_table("audit_events")
    assert isinstance(table.c.status_code.type, Integer) and not isinstance(
        table.c.status_code.type, BigInteger
    )
    assert isinstance(table.c.schema_version.type, Integer)
    assert not isinstance(table.c.schema_version.type, BigInteger)
    assert isinstance(table.c.request_size.type, BigInteger)
    assert isinstance(table.c.response_size.type, BigInteger)


def test_a_service_name_whose_lake_directory_name_passes_name_max_is_refused() -> None:
    """`service=` and the %-quoted name make at most 255 bytes: 247 letters, or 41 `é` (6 bytes each
    quoted), pass; one more is refused, with the size and the bound. Names with `/`, `..`, NUL or `%`
    are quoted into one safe segment, and pass."""
    for name in ("s" * 247, "é" * 41, "a/b", "..", "\x00", "100%", "*"):
        assert refusal(decoded(service_name=name)) is None, name
    for name, size in (("s" * 248, 256), ("é" * 42, 260)):
        event = decoded(service_name=name)
        assert refusal(event) == (
            f"event {event.event_id}: service_name {name[:40]!r}... makes a lake directory name of {size} "
            "bytes (%-quoted), over the 255 a directory name holds"
        )
