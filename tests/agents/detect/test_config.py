"""`[detect]` in agent.toml: every mistake is an error naming the file and the key, as elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditship.agents.config import parse_config
from auditship.agents.errors import ConfigError


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[detect.brute_force_user]\nthreshold = 0\n",
            "agent.toml: detect.brute_force_user.threshold: must be positive, got 0",
        ),
        (
            "[detect.brute_force_user]\nthreshhold = 5\n",
            "agent.toml: detect.brute_force_user.threshhold: unknown key; did you mean 'threshold'?",
        ),
        ("[detect.brute_force]\nenabled = false\n", "agent.toml: detect.brute_force: unknown key"),
        ("[detect.rate_limit_storm]\nwindow_s = 0\n", "agent.toml: detect.rate_limit_storm.window_s"),
        ("[detect]\nmax_keys = 0\n", "agent.toml: detect.max_keys: must be positive, got 0"),
        (
            "[detect.bulk_export]\nlimit = 0\n",
            "agent.toml: detect.bulk_export: set a limit, a factor or both",
        ),
        (
            "[detect.export_volume]\nmin_history = 30\n",
            "agent.toml: detect.export_volume.min_history: must be at most detect.export_volume.history (24)",
        ),
        (
            "[detect.off_hours_access]\nmin_active_days = 40\n",
            "agent.toml: detect.off_hours_access.min_active_days: must be at most",
        ),
        (
            '[detect.denied_address]\ndeny_list = "deny.txt"\n',
            "agent.toml: detect.denied_address.deny_list: must be an absolute path, got 'deny.txt'",
        ),
    ],
)
def test_a_mistake_in_detect_names_the_key(toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(toml, source="agent.toml")
    assert str(raised.value).startswith(message), str(raised.value)


def test_a_deny_list_that_cannot_be_read_or_parsed_names_the_file_and_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    with pytest.raises(ConfigError, match=f"detect.denied_address.deny_list: {missing}: cannot read"):
        parse_config(f'[detect.denied_address]\ndeny_list = "{missing}"\n', source="agent.toml")
    bad = tmp_path / "deny.txt"
    bad.write_text("203.0.113.9\n\n# a comment\n198.51.100.0/24  # office\nbad.example\n")
    with pytest.raises(ConfigError, match=f"{bad}:5: 'bad.example' is no address or network"):
        parse_config(f'[detect.denied_address]\ndeny_list = "{bad}"\n', source="agent.toml")


def test_detection_is_on_by_default_and_can_be_turned_off() -> None:
    assert parse_config("").detect.enabled
    assert parse_config("").wal_readers() == ["file", "parquet", "detect"]
    off = parse_config("[detect]\nenabled = false\n")
    assert off.wal_readers() == ["file", "parquet"]
