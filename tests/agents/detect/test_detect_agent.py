"""The detect worker in a real agent: events in through an emitter, alerts out through the intake into
every sink, each once, none about the detector's own alerts; its state across a drain and a kill -9;
its keys bounded; and the lake's answer (audit-query anomalies) the same as the stream's."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditship.query.anomalies import anomalies
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType, AuditOutcome
from tests.agentproc import QUICK_CONFIG, AgentDirs, RunningAgent, file_events
from tests.agents.detect.scenarios import DENIED, SCENARIOS, Scenario
from tests.agents.detect.user_rules import USER_RULES, grant
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


def detect_config(dirs: AgentDirs, snapshot_interval_s: float = 0.3, extra: str = "") -> str:
    deny_list = dirs.root / "deny.txt"
    deny_list.write_text(f"{DENIED}\n")
    # Pinned 2024 timestamps: retention must not remove the lake's partitions of those days.
    return (
        QUICK_CONFIG
        + f"""
[intake]
spool_scan_interval_s = 0.2
[retention]
auto_cleanup = false
[sinks.parquet]
flush_interval_s = 0.2
[detect]
snapshot_interval_s = {snapshot_interval_s}
{extra}
[detect.denied_address]
deny_list = "{deny_list}"
"""
    )


@pytest.fixture
def agent(dirs: AgentDirs) -> Iterator[RunningAgent]:
    running = RunningAgent(dirs, detect_config(dirs)).start()
    yield running
    running.stop()


def emit(events: list[AuditEvent]) -> None:
    emitter = Emitter()
    try:
        for event in events:
            emitter.emit(event)
        assert emitter.flush(30), emitter.stats
    finally:
        emitter.close()


def alerts(dirs: AgentDirs) -> list[dict[str, Any]]:
    return [event for event in file_events(dirs.data) if event.get("service_name") == "audit-agent"]


def test_each_pattern_raises_one_alert_naming_its_rule_key_window_and_events(
    agent: RunningAgent, dirs: AgentDirs
) -> None:
    scenarios = [make() for make in SCENARIOS.values()]
    emit([event for scenario in scenarios for event in scenario.events])
    wait_for(lambda: len(alerts(dirs)) >= len(scenarios), 30, "an alert per scenario")
    # The detector has seen every alert come back, and raised nothing about them.
    wait_for(lambda: agent.counters("detect").get("own") == len(scenarios), 30, "the alerts passed over")
    found = {alert["details"]["rule"]: alert for alert in alerts(dirs)}
    assert len(alerts(dirs)) == len(found) == len(scenarios)
    for scenario in scenarios:
        alert = found[scenario.rule]
        expected_type = (
            AuditEventType.SECURITY_VIOLATION
            if scenario.rule in ("password_spraying", "bulk_export", "denied_address")
            else AuditEventType.SUSPICIOUS_ACTIVITY
        )
        assert alert["event_type"] == expected_type
        assert alert["details"]["key"] == scenario.key
        assert alert["details"]["window_end"] == scenario.completing.timestamp.isoformat()
        assert alert["details"]["event_ids"] == [event.event_id for event in scenario.triggering][-20:]
        assert alert["timestamp"] == scenario.completing.timestamp.isoformat().replace("+00:00", "Z")
        assert alert["sender"]["uid"] is not None  # came in through the intake's spool pickup

    # The lake holds the same events, and the same rules over it find the same alerts.
    total = sum(len(scenario.events) for scenario in scenarios) + len(scenarios)
    wait_for(lambda: agent.counters("sink:parquet").get("delivered") == total, 30, "the lake complete")
    lake = anomalies(dirs.data / "lake", agent.config.detect)
    assert sorted((a["rule"], a["window_end"]) for a in lake) == sorted(
        (s.rule, s.completing.timestamp.isoformat()) for s in scenarios
    )


def cut(scenario: Scenario) -> tuple[list[AuditEvent], list[AuditEvent]]:
    at = scenario.events.index(scenario.completing)
    return scenario.events[:at], scenario.events[at:]


def test_a_pattern_cut_by_a_restart_is_found_after_it(dirs: AgentDirs) -> None:
    """Nine failures, a drain and a new start, the tenth: the alert names all ten."""
    scenario = SCENARIOS["brute_force_user"]()
    before, after = cut(scenario)
    first = RunningAgent(dirs, detect_config(dirs)).start()
    try:
        emit(before)
        wait_for(lambda: first.counters("detect").get("committed") == len(before), 30, "the nine seen")
        assert first.terminate(60) == 0
    finally:
        first.stop()
    assert (dirs.data / "detect" / "state").exists()
    second = RunningAgent(dirs, detect_config(dirs)).start()
    try:
        emit(after)
        (alert,) = wait_for(lambda: alerts(dirs), 30, "the alert")
        assert alert["details"]["event_ids"] == [event.event_id for event in scenario.triggering]
    finally:
        second.stop()


def test_after_a_kill_the_wal_is_replayed_and_the_alert_is_stored_once(dirs: AgentDirs) -> None:
    """The alert is out, the state not saved (a snapshot a minute away) when every agent process is
    killed: the next start replays the WAL, finds the pattern again, sends the same alert, and the
    intake keeps it once."""
    scenario = SCENARIOS["password_spraying"]()
    first = RunningAgent(dirs, detect_config(dirs, snapshot_interval_s=60)).start()
    emit(scenario.events)
    wait_for(lambda: alerts(dirs), 30, "the alert")
    wait_for(lambda: first.counters("detect").get("own") == 1, 30, "the alert back in the WAL")
    first.kill_everything()
    assert not (dirs.data / "detect" / "state").exists()
    second = RunningAgent(dirs, detect_config(dirs, snapshot_interval_s=60)).start()
    try:
        wait_for(lambda: second.counters("detect").get("alerts") == 1, 30, "the alert found again")
        wait_for(lambda: second.counters("intake").get("repeats", 0) >= 1, 30, "the intake to drop it")
        assert len(alerts(dirs)) == 1
    finally:
        second.stop()


def test_many_keys_stay_within_max_keys_and_a_pattern_after_them_is_found(dirs: AgentDirs) -> None:
    """3,000 failures from as many users and addresses, max_keys 50: every rule holds at most 50 keys,
    the rest forgotten and counted; a brute force after the flood still raises its alert."""
    agent = RunningAgent(dirs, detect_config(dirs, extra="max_keys = 50")).start()
    try:
        flood = [
            AuditEvent(
                event_type=AuditEventType.AUTH_FAILURE,
                outcome=AuditOutcome.FAILURE,
                user_id=f"flood-{n}",
                source_ip=f"10.{n // 256}.{n % 256}.1",
            )
            for n in range(3000)
        ]
        emit(flood)
        wait_for(lambda: agent.counters("detect").get("observed") == 3000, 30, "the flood seen")
        counters = agent.counters("detect")
        assert counters["keys"] <= 50 * len(SCENARIOS)
        assert counters["evicted"] >= 4 * (3000 - 50)  # brute force per user and address, spraying, stuffing
        scenario = SCENARIOS["brute_force_user"]()
        emit(scenario.events)
        (alert,) = wait_for(lambda: alerts(dirs), 30, "the alert")
        assert alert["details"]["rule"] == "brute_force_user"
    finally:
        agent.stop()


def test_with_detection_off_no_detect_worker_runs(dirs: AgentDirs) -> None:
    agent = RunningAgent(dirs, QUICK_CONFIG + "[detect]\nenabled = false\n").start()
    try:
        status = agent.status()
        assert status is not None
        assert [worker.name for worker in status.workers] == ["intake", "sink:file", "sink:parquet"]
        assert not Path(dirs.data / "wal" / "cursors" / "detect").exists()
    finally:
        agent.stop()


def test_alerts_pass_intake_identities_that_let_the_agents_user_send_as_audit_agent(dirs: AgentDirs) -> None:
    """With `[intake.identities]`, the agent's own user must be allowed `audit-agent`: then alerts arrive;
    without it, the detector says at start that they will be refused."""
    uid = os.geteuid()
    refusing = RunningAgent(
        dirs, detect_config(dirs) + f'[intake.identities]\n"{uid}" = ["scenario"]\n'
    ).start()
    refusing.stop()
    assert "detect: its alerts will be refused to rejects/" in refusing.log()
    logged = len(refusing.log())  # both agents append to the same log
    allowing = RunningAgent(
        dirs, detect_config(dirs) + f'[intake.identities]\n"{uid}" = ["scenario", "audit-agent"]\n'
    ).start()
    try:
        emit(SCENARIOS["bulk_export"]().events)
        (alert,) = wait_for(lambda: alerts(dirs), 30, "the alert")
        assert alert["details"]["rule"] == "bulk_export"
    finally:
        allowing.stop()
    assert "its alerts will be" not in allowing.log()[logged:]


def test_an_alert_the_spool_cannot_take_waits_and_goes_out_when_it_can(dirs: AgentDirs) -> None:
    """The spool directory replaced by a file: the alert waits in the worker (counted, the problem shown
    in the status), the cursor stays before its event; the directory back, the alert arrives once."""
    agent = RunningAgent(dirs, detect_config(dirs)).start()
    try:
        spool = agent.config.spool_path
        shutil.rmtree(spool)
        spool.write_text("in the way\n")
        emit(SCENARIOS["bulk_export"]().events)
        wait_for(lambda: agent.counters("detect").get("pending") == 1, 30, "the alert pending")
        status = agent.status()
        assert status is not None
        problem = next(worker.problem for worker in status.workers if worker.name == "detect")
        assert problem is not None and "1 alerts wait for the spool" in problem
        assert alerts(dirs) == []
        spool.unlink()
        spool.mkdir()
        (alert,) = wait_for(lambda: alerts(dirs), 60, "the alert, once the spool is back")
        assert alert["details"]["rule"] == "bulk_export"
    finally:
        agent.stop()


def test_a_sigma_rule_raises_its_alert_through_the_agent(dirs: AgentDirs) -> None:
    rules = dirs.root / "rules.yml"
    rules.write_text(USER_RULES)
    agent = RunningAgent(dirs, detect_config(dirs, extra=f'sigma_rules = ["{rules}"]')).start()
    try:
        stray = grant("billing", "carol", 3)
        emit([grant("admin-console", "bob", 1), stray])
        (alert,) = wait_for(lambda: alerts(dirs), 30, "the Sigma rule's alert")
        assert (alert["action"], alert["severity"], alert["details"]["event_ids"]) == (
            "stray_grant",
            "high",
            [stray.event_id],
        )
    finally:
        agent.stop()
