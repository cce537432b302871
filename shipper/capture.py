"""The capture hook: where events go instead of the agent while `shipper.testing.capture_events()` runs.

One module-level slot, read by `shipper.dispatch.default_emit` and by `shipper.emitter.emit` / `submit` at
each event, swapped only by `swap`. Module-level on purpose: loggers created before the capture began are
captured too. This module imports nothing of the emitter, so both sides can read it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable

from shipper.event import AuditEvent

active: Callable[[AuditEvent], None] | None = None
"""The capture receiving events now; None: events go to the agent."""


def swap(capture: Callable[[AuditEvent], None] | None) -> Callable[[AuditEvent], None] | None:
    """Make `capture` receive what is emitted; returns the one it replaces."""
    global active
    previous, active = active, capture
    return previous
