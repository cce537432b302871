"""The errors the in-service side raises into a service: only where the service asked to be told.

emit() never raises; the one exception is an acknowledged emit (`emit(event, wait=...)`,
`log_event(..., durable=True)`, `AuditConfig.fail_closed`), whose caller would rather fail a request
than let it proceed unaudited.
"""

from __future__ import annotations


class AuditDeliveryError(RuntimeError):
    """An acknowledged emit timed out: the agent did not confirm the event as synced to its WAL.

    The event is not lost for that: it waits in the emitter or in the spool and is delivered when the
    agent takes it; the caller learns only that it cannot count on it yet.
    """

    def __init__(self, event_id: str, timeout_s: float, where: str) -> None:
        super().__init__(
            f"audit event {event_id} was not confirmed by the audit-agent within {timeout_s:g}s ({where})"
        )
        self.event_id = event_id
        self.timeout_s = timeout_s


class AuditRefusedError(AuditDeliveryError):
    """An acknowledged emit the agent refused: the event is in its rejects/ (the agent's log says why),
    not in its WAL, and sending it again would be refused again."""

    def __init__(self, event_id: str) -> None:
        RuntimeError.__init__(
            self, f"audit event {event_id} was refused by the audit-agent (see its log and rejects/)"
        )
        self.event_id = event_id
        self.timeout_s = 0.0
