"""A finding as the event the detector sends: a SUSPICIOUS_ACTIVITY (or, for a CRITICAL rule, a
SECURITY_VIOLATION) of the service `audit-agent`, and the frame that carries it into the intake.

Everything about an alert follows from its rule and the WAL seq of the event that completed the
pattern, so a detector that replays the WAL after a restart sends the same frames again: the same
emitter id and seq (`lsn * RULE_SLOTS + the rule's slot`), which the intake drops as repeats, and the
same event id.
"""

from __future__ import annotations

import hashlib

from auditship.agents.detect.finding import Finding
from auditship.agents.detect.observed import DETECT_SERVICE
from auditship.agents.detect.rules import Rule
from shipper.event import AuditEvent, AuditOutcome
from shipper.wire import Frame, frame_encoder

EMITTER_ID = "auditship-detect"
RULE_SLOTS = 64
"""Frame seqs per WAL seq: one per rule (there are fewer)."""


def alert_event(rule: Rule, finding: Finding) -> AuditEvent:
    key = ", ".join(f"{field} {value}" for field, value in finding.key.items())
    return AuditEvent(
        event_type=rule.event_type,
        event_id=_event_id(finding),
        timestamp=finding.window_end,
        severity=rule.severity,
        outcome=AuditOutcome.SUCCESS,
        message=f"{rule.name}: {rule.summary} ({key}: {finding.count:g}, threshold {finding.threshold:g})",
        action=rule.name,
        user_id=finding.key.get("user_id"),
        source_ip=finding.key.get("source_ip"),
        service_name=DETECT_SERVICE,
        details={
            "rule": rule.name,
            "key": finding.key,
            "window_s": finding.window_s,
            "window_start": finding.window_start.isoformat(),
            "window_end": finding.window_end.isoformat(),
            "count": finding.count,
            "threshold": finding.threshold,
            "baseline": finding.baseline,
            "event_ids": finding.event_ids,
            "wal_seq": finding.lsn,
        },
    )


def alert_frame(rule: Rule, finding: Finding) -> bytes:
    seq = finding.lsn * RULE_SLOTS + rule.slot
    return frame_encoder.encode(Frame(EMITTER_ID, seq, 0, alert_event(rule, finding)))


def _event_id(finding: Finding) -> str:
    """As shipper.event.new_event_id lays one out (milliseconds, then 80 bits), from the finding: the
    completing event's time, then a hash of the rule and its WAL seq."""
    millis = int(finding.window_end.timestamp() * 1000) & ((1 << 48) - 1)
    digest = hashlib.blake2b(f"{finding.rule}:{finding.lsn}".encode(), digest_size=10).digest()
    return ((millis << 80) | int.from_bytes(digest, "big")).to_bytes(16, "big").hex()
