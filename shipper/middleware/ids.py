"""The correlation ids of an incoming request or call: its X-Request-ID, its W3C traceparent, or new.

A request id is taken as the correlation id when it looks like an id (1 to 128 characters of letters,
digits and `._:/+=@-`): anything else could be an attempt to forge log lines, so it is replaced by a
new one. Without a request id, the trace id of a valid traceparent correlates; without either, the
id of the request's own audit event does (one id is made per request, not two). The traceparent's
trace id and parent span id go into the event's `trace_id` and `span_id`.
"""

from __future__ import annotations

import re

from shipper.correlation import CorrelationIds

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
# version-traceid-parentid-flags; versions after 00 may append fields (W3C Trace Context, section 3.2).
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?")
_NO_TRACE = "0" * 32
_NO_SPAN = "0" * 16


def parse_traceparent(header: str) -> tuple[str, str] | None:
    """(trace id, parent span id) of a valid traceparent header, else None."""
    found = _TRACEPARENT.fullmatch(header.strip())
    if found is None:
        return None
    version, trace_id, span_id, extra = found.groups()
    if version == "ff" or (version == "00" and extra) or trace_id == _NO_TRACE or span_id == _NO_SPAN:
        return None
    return trace_id, span_id


def incoming_ids(request_id: str | None, traceparent: str | None, new_id: str) -> CorrelationIds:
    """The ids a request carries in, completed with `new_id` (the id of the request's event): its
    correlation_id and request_id are always set."""
    trace = parse_traceparent(traceparent) if traceparent else None
    trace_id, span_id = trace if trace else (None, None)
    if request_id is None or not _REQUEST_ID.fullmatch(request_id):
        request_id = trace_id or new_id
    return CorrelationIds(request_id, request_id, trace_id, span_id)
