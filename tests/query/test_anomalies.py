"""`audit-query anomalies` and `AuditLogger.detect_anomalies`: the detector's rules over a lake that holds
one pattern per rule (tests/agents/detect/scenarios.py), with the thresholds of an agent.toml."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipper import AuditConfig, AuditContext, AuditLogger
from tests.agents.detect.scenarios import DENIED, SCENARIOS, Scenario
from tests.query.lakes import write_events


@dataclass
class PatternLake:
    data: Path
    config: Path
    """An agent.toml of that data directory that lists DENIED."""
    scenarios: dict[str, Scenario]


@pytest.fixture(scope="module")
def patterns(tmp_path_factory: pytest.TempPathFactory) -> PatternLake:
    root = tmp_path_factory.mktemp("patterns")
    scenarios = {rule: make() for rule, make in SCENARIOS.items()}
    events = sorted((e for s in scenarios.values() for e in s.events), key=lambda event: event.timestamp)
    write_events(root / "data" / "lake", list(enumerate(events, 1)))
    (root / "deny.txt").write_text(f"{DENIED}\n")
    config = root / "agent.toml"
    config.write_text(
        f'data_dir = "{root / "data"}"\n[detect.denied_address]\ndeny_list = "{root / "deny.txt"}"\n'
    )
    return PatternLake(root / "data", config, scenarios)


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_every_pattern_is_found_once_with_its_key_window_and_events(cli, patterns: PatternLake) -> None:
    result = cli("anomalies", "--config", patterns.config)
    assert (result.status, result.err) == (0, "")
    found = {anomaly["rule"]: anomaly for anomaly in lines(result.out)}
    assert len(lines(result.out)) == len(found) == len(SCENARIOS)
    for rule, scenario in patterns.scenarios.items():
        anomaly = found[rule]
        assert anomaly["key"] == scenario.key
        assert anomaly["window_end"] == scenario.completing.timestamp.isoformat()
        assert anomaly["event_ids"] == [event.event_id for event in scenario.triggering][-20:]
        assert anomaly["count"] >= anomaly["threshold"]
    assert found["bulk_export"]["severity"] == "critical"
    assert found["bulk_export"]["event_type"] == "security_violation"
    assert found["export_volume"]["baseline"] == 100.0


def test_the_data_dir_alone_has_no_deny_list_and_default_thresholds(cli, patterns: PatternLake) -> None:
    result = cli("anomalies", "--data-dir", patterns.data)
    assert sorted(anomaly["rule"] for anomaly in lines(result.out)) == sorted(
        set(SCENARIOS) - {"denied_address"}
    )


def test_rule_chooses_rules_and_runs_one_the_config_turns_off(cli, patterns: PatternLake, tmp_path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'data_dir = "{patterns.data}"\n[detect.bulk_export]\nenabled = false\n')
    everything = lines(cli("anomalies", "--config", config).out)
    assert "bulk_export" not in {anomaly["rule"] for anomaly in everything}
    chosen = cli("anomalies", "--config", config, "--rule", "bulk_export", "--rule", "rate_limit_storm")
    assert sorted(anomaly["rule"] for anomaly in lines(chosen.out)) == ["bulk_export", "rate_limit_storm"]


def test_an_unknown_rule_is_an_error_naming_the_rules(cli, patterns: PatternLake) -> None:
    result = cli("anomalies", "--data-dir", patterns.data, "--rule", "brute_force")
    assert result.status == 2
    assert result.err.startswith(
        "audit-query: --rule: no rule 'brute_force'; the rules are brute_force_user,"
    )


def test_thresholds_come_from_the_config(cli, patterns: PatternLake, tmp_path) -> None:
    """At 5 failures a user, the 4 users of the address brute force are each found too."""
    config = tmp_path / "agent.toml"
    config.write_text(f'data_dir = "{patterns.data}"\n[detect.brute_force_user]\nthreshold = 5\n')
    result = cli("anomalies", "--config", config, "--rule", "brute_force_user")
    users = sorted(anomaly["key"]["user_id"] for anomaly in lines(result.out))
    assert users == ["bf-user", "bfa-0", "bfa-1", "bfa-2", "bfa-3"]


def test_since_keeps_later_alerts_and_still_reads_the_history_before_it(cli, patterns: PatternLake) -> None:
    """From the hour of the unusual export on: only the alerts from then, and the export is still measured
    against the three hours before --since."""
    export = patterns.scenarios["export_volume"].completing.timestamp
    result = cli(
        "anomalies", "--data-dir", patterns.data, "--since", export.isoformat(), "--rule", "export_volume"
    )
    (anomaly,) = lines(result.out)
    assert anomaly["baseline"] == 100.0
    later = cli("anomalies", "--data-dir", patterns.data, "--since", export.isoformat())
    assert all(anomaly["window_end"] >= export.isoformat() for anomaly in lines(later.out))
    assert len(lines(later.out)) < len(SCENARIOS) - 1


def test_table_and_csv(cli, patterns: PatternLake) -> None:
    table = cli("anomalies", "--data-dir", patterns.data, "--rule", "bulk_export", "--format", "table").out
    header, row = table.splitlines()
    assert header.split()[:4] == ["time", "rule", "severity", "key"]
    assert "bulk_export" in row and "user_id=bulk" in row and "150000" in row
    text = cli("anomalies", "--data-dir", patterns.data, "--rule", "bulk_export", "--format", "csv").out
    (record,) = list(csv.DictReader(io.StringIO(text)))
    assert (record["rule"], record["key"], record["count"], record["threshold"]) == (
        "bulk_export",
        "user_id=bulk",
        "150000",
        "100000",
    )


def test_detect_anomalies_from_python(patterns: PatternLake) -> None:
    config = AuditConfig()
    config.data_dir = patterns.data
    logger = AuditLogger(config, AuditContext(service_name="auditor"), emit=lambda event: None)
    found = asyncio.run(logger.detect_anomalies(rules="password_spraying"))
    assert [(a["rule"], a["key"]) for a in found] == [("password_spraying", {"source_ip": "10.3.0.1"})]
    listed = asyncio.run(logger.detect_anomalies(config_file=patterns.config, rules=["denied_address"]))
    assert [a["key"] for a in listed] == [{"source_ip": "192.0.2.66"}]
    spraying = patterns.scenarios["password_spraying"].completing.timestamp
    assert asyncio.run(logger.detect_anomalies(end_time=spraying, rules="password_spraying")) == []
