"""Each rule over its scenario, in the Detector alone: it finds its pattern, with the key, the window and
the events that triggered it, and no other rule fires on it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from auditship.agents.detect.engine import Detector
from auditship.agents.detect.rules import BY_NAME, RULES
from shipper.event import AuditEvent, AuditEventType
from tests.agents.detect.feeding import config_with_deny_list, feed
from tests.agents.detect.scenarios import BASE, SCENARIOS


def test_every_rule_has_a_scenario() -> None:
    assert list(SCENARIOS) == [rule.name for rule in RULES]


@pytest.mark.parametrize("rule", list(SCENARIOS))
def test_a_rule_finds_its_pattern_and_only_it_does(rule: str, tmp_path: Path) -> None:
    scenario = SCENARIOS[rule]()
    found = feed(Detector(config_with_deny_list(tmp_path)), scenario.events)
    assert [(fired.name, finding.key) for fired, finding in found] == [(rule, scenario.key)]
    finding = found[0][1]
    assert finding.window_end == scenario.completing.timestamp
    assert finding.event_ids == [event.event_id for event in scenario.triggering][-20:]
    assert finding.lsn == scenario.events.index(scenario.completing) + 1
    assert finding.count >= finding.threshold


@pytest.mark.parametrize("rule", list(SCENARIOS))
def test_one_event_short_of_the_pattern_finds_nothing(rule: str, tmp_path: Path) -> None:
    """The pattern but its completing event: below every threshold."""
    scenario = SCENARIOS[rule]()
    events = [event for event in scenario.events if event is not scenario.completing]
    assert feed(Detector(config_with_deny_list(tmp_path)), events) == []


def test_all_patterns_at_once_find_one_alert_each(tmp_path: Path) -> None:
    events = sorted(
        (event for make in SCENARIOS.values() for event in make().events), key=lambda event: event.timestamp
    )
    found = feed(Detector(config_with_deny_list(tmp_path)), events)
    assert sorted(rule.name for rule, _ in found) == sorted(SCENARIOS)


def test_a_key_is_quiet_for_a_window_after_its_alert(tmp_path: Path) -> None:
    """30 failures in 4 minutes: one alert, not one per failure past the threshold; 10 more a window
    after the alert raise the next."""
    detector = Detector(config_with_deny_list(tmp_path))
    burst = [failure_at(timedelta(seconds=8 * n)) for n in range(30)]
    later = [failure_at(timedelta(minutes=10, seconds=n)) for n in range(10)]
    found = feed(detector, burst + later)
    assert [(rule.name, finding.window_end) for rule, finding in found] == [
        ("brute_force_user", burst[9].timestamp),
        ("brute_force_user", later[-1].timestamp),
    ]


def failure_at(at: timedelta) -> AuditEvent:
    return AuditEvent(event_type=AuditEventType.AUTH_FAILURE, timestamp=BASE + at, user_id="quiet")


def test_the_thresholds_are_the_configs(tmp_path: Path) -> None:
    """brute_force_user at 5: the scenario's fifth failure alerts."""
    scenario = SCENARIOS["brute_force_user"]()
    config = config_with_deny_list(tmp_path, brute_force_user={"threshold": 5})
    found = feed(Detector(config), scenario.events[:5])
    assert [(rule.name, finding.event_ids) for rule, finding in found] == [
        ("brute_force_user", [event.event_id for event in scenario.events[:5]])
    ]


def test_a_disabled_rule_is_not_run(tmp_path: Path) -> None:
    config = config_with_deny_list(tmp_path, brute_force_user={"enabled": False})
    assert "brute_force_user" not in [rule.name for rule, _ in Detector(config).rules]
    assert feed(Detector(config), SCENARIOS["brute_force_user"]().events) == []


def test_critical_rules_raise_security_violations_and_the_others_suspicious_activity() -> None:
    assert {rule.name for rule in RULES if rule.event_type == "security_violation"} == {
        "password_spraying",
        "bulk_export",
        "denied_address",
    }
    assert BY_NAME["brute_force_user"].event_type == "suspicious_activity"


def test_an_hour_late_is_not_off_hours_and_four_hours_early_is(tmp_path: Path) -> None:
    """A week of reads at 09:00, then one at 11:00 (within margin_hours, 2, of 09:00): no alert; then
    one at 05:00, four hours from any hour worked: an alert."""

    def at(day: int, hour: int) -> AuditEvent:
        return AuditEvent(
            event_type=AuditEventType.DATA_READ,
            timestamp=BASE.replace(hour=hour) + timedelta(days=day),
            user_id="u",
        )

    week = [at(day, 9) for day in range(7)]
    near, far = at(7, 11), at(8, 5)
    found = feed(Detector(config_with_deny_list(tmp_path)), [*week, near, far])
    assert [(rule.name, finding.event_ids) for rule, finding in found] == [
        ("off_hours_access", [far.event_id])
    ]
