"""Where an event goes when no one said: the `Emit` and `Submit` signatures, `default_emit` and
`default_submit`, which a logger, a middleware or a logging handler built without `emit=` uses.

`default_emit` sends to `shipper.emitter.emit` (imported at first use) or, while
`shipper.testing.capture_events()` is active, to that capture (shipper.capture).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shipper import capture
from shipper.event import AuditEvent

if TYPE_CHECKING:
    from shipper.receipt import Receipt

Emit = Callable[[AuditEvent], None]
Submit = Callable[[AuditEvent], "Receipt"]

_emitter_emit: Emit | None = None


def default_emit(event: AuditEvent) -> None:
    """Send to the active capture, else to `shipper.emitter.emit`.

    An emitter that cannot be imported raises ImportError at the first event: a broken install
    must be seen, not lose audit events quietly.
    """
    global _emitter_emit
    active = capture.active
    if active is not None:
        active(event)
        return
    if _emitter_emit is None:
        # Imported here, not at the top: a service that only builds events, or a test capturing
        # them, never needs the emitter (and its ZeroMQ socket) to exist.
        from shipper.emitter import emit

        _emitter_emit = emit
    _emitter_emit(event)


def default_submit(event: AuditEvent) -> Receipt:
    """An acknowledged emit through `shipper.emitter.submit` (which honours the active capture)."""
    from shipper.emitter import submit

    return submit(event)
