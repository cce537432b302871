"""What the detector sends: the alert event, and a frame that is the same when a replay finds it again."""

from __future__ import annotations

from pathlib import Path

from auditship.agents.detect.alert import RULE_SLOTS, alert_event, alert_frame
from auditship.agents.detect.engine import Detector
from auditship.agents.detect.rules import BY_NAME, RULES
from shipper.event import AuditEventType, AuditSeverity
from shipper.wire import frame_decoder
from tests.agents.detect.feeding import config_with_deny_list, feed
from tests.agents.detect.scenarios import SCENARIOS


def test_an_alert_names_its_rule_key_window_and_events(tmp_path: Path) -> None:
    scenario = SCENARIOS["password_spraying"]()
    ((rule, finding),) = feed(Detector(config_with_deny_list(tmp_path)), scenario.events)
    event = alert_event(rule, finding)
    assert (event.event_type, event.severity, event.service_name) == (
        AuditEventType.SECURITY_VIOLATION,
        AuditSeverity.CRITICAL,
        "audit-agent",
    )
    assert (event.source_ip, event.user_id, event.action) == ("10.3.0.1", None, "password_spraying")
    assert event.timestamp == scenario.completing.timestamp
    assert event.details == {
        "rule": "password_spraying",
        "key": {"source_ip": "10.3.0.1"},
        "window_s": 600.0,
        "window_start": scenario.events[0].timestamp.isoformat(),
        "window_end": scenario.completing.timestamp.isoformat(),
        "count": 10.0,
        "threshold": 10.0,
        "baseline": None,
        "event_ids": [e.event_id for e in scenario.events],
        "wal_seq": 10,
    }


def test_the_same_finding_makes_the_same_frame_and_event_id(tmp_path: Path) -> None:
    """A detector replaying the WAL after a restart sends what it sent before: the intake drops it as a
    repeat of the same emitter and seq."""
    scenario = SCENARIOS["bulk_export"]()
    first = feed(Detector(config_with_deny_list(tmp_path)), scenario.events)
    again = feed(Detector(config_with_deny_list(tmp_path)), scenario.events)
    frames = [alert_frame(rule, finding) for rule, finding in first + again]
    assert frames[0] == frames[1]
    decoded = frame_decoder.decode(frames[0])
    assert (decoded.emitter, decoded.seq) == (
        "auditship-detect",
        1 * RULE_SLOTS + RULES.index(BY_NAME["bulk_export"]),
    )
    assert decoded.event.event_id[:12] == f"{int(scenario.completing.timestamp.timestamp() * 1000):012x}"


def test_the_detector_passes_over_its_own_alerts(tmp_path: Path) -> None:
    """An alert about a listed address carries that address: taken as input, it would raise another."""
    scenario = SCENARIOS["denied_address"]()
    detector = Detector(config_with_deny_list(tmp_path))
    ((rule, finding),) = feed(detector, scenario.events)
    assert feed(detector, [alert_event(rule, finding)], first_lsn=2) == []
    assert detector.counts.own == 1
