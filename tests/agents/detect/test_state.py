"""The detector's state: saved and taken back whole (a restart forgets no partial window), records it
already holds skipped, and bounded in keys whatever their number."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest

from auditship.agents.detect.engine import Detector, Snapshot
from auditship.agents.detect.keyed import Keyed
from shipper.event import AuditEvent, AuditEventType
from tests.agents.detect.feeding import config_with_deny_list, feed
from tests.agents.detect.scenarios import SCENARIOS


@pytest.mark.parametrize("rule", list(SCENARIOS))
def test_a_pattern_cut_by_a_restart_is_found_after_it(rule: str, tmp_path: Path) -> None:
    """The events before the completing one go to one detector, its snapshot to a new one, the completing
    event to that: the new one alerts as the first would have."""
    scenario = SCENARIOS[rule]()
    cut = scenario.events.index(scenario.completing)
    before = Detector(config_with_deny_list(tmp_path))
    assert feed(before, scenario.events[:cut]) == []
    after = Detector(config_with_deny_list(tmp_path))
    after.restore(before.snapshot(), "test")
    assert after.position == cut
    found = feed(after, scenario.events[cut:], first_lsn=cut + 1)
    assert [(fired.name, finding.event_ids) for fired, finding in found] == [
        (rule, [event.event_id for event in scenario.triggering][-20:])
    ]


def test_records_the_state_holds_already_are_skipped(tmp_path: Path) -> None:
    """A cursor behind the snapshot (a crash between saving and committing) replays records the state
    counted: they count once."""
    scenario = SCENARIOS["brute_force_user"]()
    detector = Detector(config_with_deny_list(tmp_path))
    feed(detector, scenario.events[:9])
    assert feed(detector, scenario.events[:9]) == []  # seqs 1-9 again
    assert [rule.name for rule, _ in feed(detector, scenario.events[9:], first_lsn=10)] == [
        "brute_force_user"
    ]


def test_a_lowered_threshold_applies_to_the_state_taken_back(tmp_path: Path) -> None:
    scenario = SCENARIOS["brute_force_user"]()
    before = Detector(config_with_deny_list(tmp_path))
    feed(before, scenario.events[:8])
    after = Detector(config_with_deny_list(tmp_path, brute_force_user={"threshold": 3}))
    after.restore(before.snapshot(), "test")
    found = feed(after, scenario.events[8:9], first_lsn=9)
    assert [(rule.name, finding.event_ids) for rule, finding in found] == [
        ("brute_force_user", [event.event_id for event in scenario.events[6:9]])
    ]


def test_a_state_that_is_not_one_starts_every_rule_afresh_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    detector = Detector(config_with_deny_list(tmp_path))
    with caplog.at_level(logging.ERROR, "auditship.detect"):
        detector.restore(b"not a snapshot", "detect/state")
    assert detector.position == 0 and detector.keys == 0
    assert "detect/state is no detector state" in caplog.text


def test_a_rule_whose_saved_state_does_not_fit_starts_afresh_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    detector = Detector(config_with_deny_list(tmp_path))
    feed(detector, SCENARIOS["password_spraying"]().events[:5])
    snapshot = msgspec.msgpack.decode(detector.snapshot(), type=Snapshot)
    snapshot.rules["brute_force_address"] = msgspec.msgpack.encode([["10.3.0.1", {"not": "a state"}]])
    restored = Detector(config_with_deny_list(tmp_path))
    with caplog.at_level(logging.WARNING, "auditship.detect"):
        restored.restore(msgspec.msgpack.encode(snapshot), "test")
    assert "the saved state of brute_force_address does not fit" in caplog.text
    held = {rule.name: len(family.table) for rule, family in restored.rules}
    assert held["password_spraying"] == 1
    assert restored.position == 5


def test_each_rule_keeps_at_most_max_keys_however_many_it_meets(tmp_path: Path) -> None:
    """A failure from each of 5,000 users and addresses: every rule holds at most 100 keys, the least
    recently seen forgotten and counted, and a pattern after it is still found."""
    config = config_with_deny_list(tmp_path, max_keys=100)
    detector = Detector(config)
    flood = [
        AuditEvent(
            event_type=AuditEventType.AUTH_FAILURE,
            user_id=f"u{n}",
            source_ip=f"10.{n // 256 % 256}.{n % 256}.7",
        )
        for n in range(5000)
    ]
    feed(detector, flood)
    assert all(len(family.table) <= 100 for _, family in detector.rules)
    assert detector.evicted >= 2 * (5000 - 100)
    scenario = SCENARIOS["brute_force_user"]()
    found = feed(detector, scenario.events, first_lsn=5001)
    assert [rule.name for rule, _ in found] == ["brute_force_user"]


def test_keyed_forgets_the_least_recently_used_key_first() -> None:
    table: Keyed[int] = Keyed(2)
    table.put("a", 1)
    table.put("b", 2)
    assert table.get("a") == 1  # a is now the most recent
    table.put("c", 3)
    assert [key for key, _ in table.items()] == ["a", "c"]
    assert table.evicted == 1
    assert table.peek("b") is None
