"""Helpers for testing the audit events your own service logs.

    from shipper.testing import capture_events

    async def test_login_is_audited(client):
        with capture_events() as events:
            await client.post("/login", json={"user": "alice", "password": "..."})
        [login] = events.of_type(AuditEventType.USER_LOGIN)
        assert login.user_id == "alice"

While the block runs, every event given to `shipper.emit` or to an `AuditLogger` built without an
explicit `emit` goes into the capture instead of to the agent, whenever that logger was created (an
application's logger made at import time is captured too). Nothing is sent and no agent is needed.
Events are kept in the order they were logged, from any thread or task.

Limits: a logger given its own `emit=` (or an `Emitter` object used directly) is not captured: its
events go where it was told. The capture is process-wide, so it is not meant for tests that run
concurrently in one process; nested captures are allowed and the innermost one receives the events.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shipper import capture
from shipper.event import AuditEvent, AuditEventType


class CapturedEvents(list[AuditEvent]):
    """The captured events, oldest first: a list, with a filter by event type."""

    def of_type(self, *event_types: AuditEventType) -> list[AuditEvent]:
        """The captured events of any of `event_types`, in order."""
        wanted = frozenset(event_types)
        return [event for event in self if event.event_type in wanted]


@contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Capture the events logged in the block instead of sending them; yields them as they come."""
    captured = CapturedEvents()
    previous = capture.swap(captured.append)
    try:
        yield captured
    finally:
        capture.swap(previous)
