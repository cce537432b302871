"""Sigma rules (pySigma) compiled into the detector's rules: the built-in ones in Sigma find what the
built-in rules find, on the stream and on the lake; a user's rule runs on both alike; a rule that does
not compile is an error naming its file, line and reason."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from auditship.agents.config import parse_config
from auditship.agents.detect.config import DetectConfig
from auditship.agents.detect.engine import Detector
from auditship.agents.detect.rules import BY_NAME
from auditship.agents.detect.sigma.backend import compile_files
from auditship.agents.errors import ConfigError
from auditship.query.anomalies import anomalies
from tests.agents.detect.feeding import feed
from tests.agents.detect.scenarios import SCENARIOS
from tests.agents.detect.user_rules import USER_RULES, grant
from tests.query.lakes import write_events

BUILTIN = Path(__file__).parents[3] / "agents" / "detect" / "sigma" / "builtin.yml"
IN_SIGMA = [
    "brute_force_user",
    "brute_force_address",
    "password_spraying",
    "credential_stuffing",
    "rate_limit_storm",
]


def in_sigma() -> DetectConfig:
    """The built-in rules Sigma can say, turned off, and their Sigma version loaded instead."""
    return msgspec.convert(
        {"sigma_rules": [str(BUILTIN)], **{name: {"enabled": False} for name in IN_SIGMA}}, DetectConfig
    )


def test_the_builtin_rules_in_sigma_compile_to_the_same_thresholds_windows_and_slots() -> None:
    compiled = {rule.name: rule for rule in compile_files([str(BUILTIN)])}
    assert list(compiled) == IN_SIGMA
    defaults = DetectConfig()
    for name, rule in compiled.items():
        assert (rule.severity, rule.slot) == (BY_NAME[name].severity, BY_NAME[name].slot)
        family = rule.build(name, None, defaults.context())
        settings = defaults.settings(name)
        assert (family.settings.threshold, family.settings.window_s) == (
            settings.threshold,
            settings.window_s,
        )


@pytest.mark.parametrize("rule", IN_SIGMA)
def test_a_builtin_rule_in_sigma_finds_what_the_builtin_finds(rule: str) -> None:
    scenario = SCENARIOS[rule]()
    builtin = [
        (r.name, f.key, f.window_end, f.event_ids) for r, f in feed(Detector(DetectConfig()), scenario.events)
    ]
    sigma = [
        (r.name, f.key, f.window_end, f.event_ids) for r, f in feed(Detector(in_sigma()), scenario.events)
    ]
    assert sigma == builtin
    assert [name for name, *_ in sigma] == [rule]


def test_on_the_lake_the_builtin_rules_in_sigma_find_what_the_builtins_find(tmp_path: Path) -> None:
    events = sorted(
        (e for make in SCENARIOS.values() for e in make().events), key=lambda event: event.timestamp
    )
    write_events(tmp_path / "lake", list(enumerate(events, 1)))

    def found(config: DetectConfig) -> list[tuple[str, str, list[str]]]:
        return [
            (a["rule"], a["window_end"], a["event_ids"])
            for a in anomalies(tmp_path / "lake", config, rules=IN_SIGMA)
        ]

    builtin = found(DetectConfig())
    assert found(in_sigma()) == builtin
    assert sorted(rule for rule, _, _ in builtin) == sorted(IN_SIGMA)


def test_a_users_rule_runs_alike_on_the_stream_and_the_lake(tmp_path: Path) -> None:
    """Case-insensitive wildcards, a list, a regular expression, null and `not`: only the grant from
    outside the admin tools, with a resource, alerts."""
    path = tmp_path / "rules.yml"
    path.write_text(USER_RULES)
    config = msgspec.convert({"sigma_rules": [str(path)]}, DetectConfig)
    events = [grant("admin-console", "bob", 1), grant("billing", None, 2), grant("billing", "carol", 3)]
    found = feed(Detector(config), events)
    assert [(rule.name, rule.severity, finding.event_ids) for rule, finding in found] == [
        ("stray_grant", "high", [events[2].event_id])
    ]
    write_events(tmp_path / "lake", list(enumerate(events, 1)))
    (anomaly,) = anomalies(tmp_path / "lake", config, rules=["stray_grant"])
    assert (anomaly["key"], anomaly["event_ids"]) == ({"source_ip": "10.7.0.3"}, [events[2].event_id])


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (
            USER_RULES.replace("service_name|re", "username"),
            13,
            "field 'username' is not one the detector reads",
        ),
        (USER_RULES.replace("condition: grant and", "condition: grant and and"), 16, "condition: Expected"),
        (USER_RULES.replace("action|startswith", "action|sortof"), 1, "Unknown modifier 'sortof'"),
        (
            USER_RULES
            + "---\ntitle: late\nname: late\ncorrelation:\n  type: temporal\n  rules: [stray_grant]\n"
            "  group-by: [user_id]\n  timespan: 5m\n",
            22,
            "correlation type temporal is not supported",
        ),
    ],
    ids=["unknown field", "bad condition", "unknown modifier", "temporal"],
)
def test_a_rule_that_does_not_compile_names_its_file_line_and_reason(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        parse_config(f'[detect]\nsigma_rules = ["{path}"]\n', source="agent.toml")
    message = str(raised.value)
    assert message.startswith(f"agent.toml: detect.sigma_rules: {path}:{line}: "), message
    assert reason in message


def test_a_sigma_rule_named_as_a_builtin_needs_the_builtin_off(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Sigma rule 'brute_force_user' is also a built-in rule"):
        parse_config(f'[detect]\nsigma_rules = ["{BUILTIN}"]\n', source="agent.toml")
    with pytest.raises(ConfigError, match="no file matches"):
        parse_config(f'[detect]\nsigma_rules = ["{tmp_path}/*.yml"]\n', source="agent.toml")
