"""Legal holds: `audit-agent hold add/remove/list` keep one small file in the data directory, written
atomically; what a hold matches; and what retention does when the file cannot be read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditship.agents import holds
from auditship.agents.cli import main
from auditship.agents.holds import Hold, HoldsError
from auditship.agents.retention import Location, apply_retention
from auditship.ondisk.data_layout import DataLayout

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """An agent.toml whose data directory is the test's."""
    path = tmp_path / "agent.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    return path


def audit_agent(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    try:
        status = main([str(arg) for arg in args])
    except SystemExit as exc:  # argparse's usage errors
        status = int(exc.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_holds_are_added_listed_and_removed_from_the_command_line(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """add stores the hold with its criteria and reason, list shows each, remove lifts it; the file is
    JSON in the data directory, owner-only, with no temporary file left beside it."""
    status, out, _ = audit_agent(
        capsys,
        "hold",
        "add",
        "case-42",
        "--user",
        "alice",
        "--since",
        "2025-01-01",
        "--reason",
        "subpoena 7",
        "--config",
        config,
    )
    assert status == 0 and "hold case-42 placed: user_id=alice 2025-01-01T00:00:00+00:00.." in out
    audit_agent(
        capsys,
        "hold",
        "add",
        "matter-7",
        "--resource-type",
        "invoice",
        "--resource-id",
        "77",
        "--config",
        config,
    )
    status, out, _ = audit_agent(capsys, "hold", "list", "--config", config)
    lines = out.splitlines()
    assert status == 0 and len(lines) == 2
    assert lines[0].startswith("case-42  user_id=alice 2025-01-01T00:00:00+00:00..  placed ")
    assert lines[0].endswith("subpoena 7")
    assert lines[1].startswith("matter-7  resource_type=invoice resource_id=77  placed ")
    path = DataLayout(tmp_path / "data").holds
    assert [hold["name"] for hold in json.loads(path.read_bytes())["holds"]] == ["case-42", "matter-7"]
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith(".holds.json.lock")) == [
        "holds.json"
    ]
    status, out, _ = audit_agent(capsys, "hold", "remove", "case-42", "--config", config)
    assert status == 0 and "hold case-42 lifted" in out
    assert [hold.name for hold in holds.load(path)] == ["matter-7"]
    audit_agent(capsys, "hold", "remove", "matter-7", "--config", config)
    assert audit_agent(capsys, "hold", "list", "--config", config)[1] == f"no legal holds ({path})\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("hold", "add", "empty"), "give at least one of --user"),
        (("hold", "add", "bad name!", "--user", "u"), "hold name 'bad name!'"),
        (("hold", "add", "late", "--since", "2025-02-01", "--until", "2025-01-01"), "is not before --until"),
        (("hold", "remove", "absent"), "no hold absent"),
    ],
)
def test_a_hold_that_cannot_be_made_or_removed_is_an_error_that_says_why(
    config: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    status, _, err = audit_agent(capsys, *args, "--config", config)
    assert status == 2 and message in err


def test_a_name_in_use_is_refused_and_the_first_hold_stays(tmp_path: Path) -> None:
    path = tmp_path / "holds.json"
    holds.add(path, "case-1", user_id="alice", now=NOW)
    with pytest.raises(HoldsError, match="exists already"):
        holds.add(path, "case-1", user_id="bob", now=NOW)
    assert [hold.user_id for hold in holds.load(path)] == ["alice"]


def test_a_hold_matches_when_every_criterion_it_gives_matches() -> None:
    """user AND resource AND [since, until); a criterion not given matches anything."""
    hold = Hold(
        name="h", created=NOW, user_id="alice", resource_id="7", since=NOW, until=NOW + timedelta(days=1)
    )
    assert hold.matches("alice", "invoice", "7", NOW)
    assert not hold.matches("bob", "invoice", "7", NOW)
    assert not hold.matches("alice", "invoice", "8", NOW)
    assert not hold.matches("alice", "invoice", "7", NOW + timedelta(days=1))
    assert not hold.matches("alice", "invoice", "7", NOW - timedelta(seconds=1))
    assert hold.overlaps(NOW - timedelta(days=1), NOW + timedelta(seconds=1))
    assert not hold.overlaps(NOW - timedelta(days=1), NOW)


def test_a_holds_file_that_cannot_be_read_keeps_everything(tmp_path: Path) -> None:
    """Retention cannot know what is held: it removes nothing and says why."""
    root = tmp_path / "data"
    (root / "lake" / "date=2020-01-01" / "service=svc").mkdir(parents=True)
    DataLayout(root).holds.write_text("{not json")
    found = apply_retention(Location.of_data_dir(root), timedelta(days=30))
    assert len(found) == 1 and found[0].error is not None and "nothing removed" in found[0].error
    assert (root / "lake" / "date=2020-01-01").is_dir()
