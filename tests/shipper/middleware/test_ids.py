"""Correlation ids of an incoming request: its X-Request-ID, its traceparent, or a new id."""

from __future__ import annotations

import pytest

from shipper.middleware.ids import incoming_ids, parse_traceparent

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
NEW_ID = "0192f0c4a1b2c3d4e5f60718293a4b5c"


def test_a_valid_traceparent_gives_its_trace_and_parent_span_ids() -> None:
    """Version 00 with sampled or unsampled flags, and a later version with extra fields."""
    assert parse_traceparent(f"00-{TRACE_ID}-{SPAN_ID}-01") == (TRACE_ID, SPAN_ID)
    assert parse_traceparent(f" 00-{TRACE_ID}-{SPAN_ID}-00 ") == (TRACE_ID, SPAN_ID)
    assert parse_traceparent(f"01-{TRACE_ID}-{SPAN_ID}-01-future") == (TRACE_ID, SPAN_ID)


@pytest.mark.parametrize(
    "header",
    [
        f"ff-{TRACE_ID}-{SPAN_ID}-01",  # version ff is invalid
        f"00-{'0' * 32}-{SPAN_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero span id
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",  # upper-case hex
        f"00-{TRACE_ID}-{SPAN_ID}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",
        "garbage",
    ],
)
def test_an_invalid_traceparent_is_ignored(header: str) -> None:
    """What the W3C Trace Context spec calls invalid gives no ids."""
    assert parse_traceparent(header) is None


def test_the_request_id_correlates_and_the_trace_ids_are_kept_beside_it() -> None:
    """X-Request-ID is the correlation and request id; the traceparent still gives trace and span ids."""
    ids = incoming_ids("req-1", f"00-{TRACE_ID}-{SPAN_ID}-01", NEW_ID)
    assert ids == ("req-1", "req-1", TRACE_ID, SPAN_ID)


def test_without_a_request_id_the_trace_id_correlates() -> None:
    """A traceparent alone: its trace id is the correlation id."""
    ids = incoming_ids(None, f"00-{TRACE_ID}-{SPAN_ID}-01", NEW_ID)
    assert ids == (TRACE_ID, TRACE_ID, TRACE_ID, SPAN_ID)


@pytest.mark.parametrize("request_id", [None, "", "has space", "line\nbreak", "x" * 129, "naïve"])
def test_a_missing_or_unlikely_request_id_is_replaced_by_the_new_id(request_id: str | None) -> None:
    """Nothing that could forge a log line or bloat one is taken: the request's new id stands instead."""
    ids = incoming_ids(request_id, None, NEW_ID)
    assert ids.correlation_id == ids.request_id == NEW_ID
    assert (ids.trace_id, ids.span_id) == (None, None)


def test_usual_id_shapes_are_kept() -> None:
    """UUIDs, base64 and colon-separated ids are ids."""
    for request_id in ("9f1c2a4e-7b1d-4a5e-9c3f-0e2d6b8a1c4f", "YWJjZA==", "gw:1:abc/2", "a@b.c"):
        assert incoming_ids(request_id, None, NEW_ID).correlation_id == request_id
