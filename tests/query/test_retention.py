"""Retention removes exactly what lies wholly before the horizon: lake partitions, closed files, rejects
and dead letters; a dry run removes nothing; the agent applies it by itself when auto_cleanup is on."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from auditship.agents import holds
from auditship.agents.config import parse_config
from auditship.agents.crypto import Keyring
from auditship.agents.errors import ConfigError
from auditship.agents.retention import Location, apply_retention
from auditship.agents.sinks.file.config import FileSinkConfig
from auditship.agents.sinks.file.sink import FileSink
from auditship.ondisk.data_layout import DataLayout
from shipper.compliance import RetentionFloorError
from shipper.event import AuditEvent, AuditEventType
from tests.agentproc import AgentDirs, RunningAgent
from tests.agents.sinks.entries import entries
from tests.query.lakes import write_events
from tests.waiting import wait_for

HORIZON = timedelta(days=30)


@pytest.fixture
def now() -> datetime:
    """The time the test's data is made against, taken as the test starts: the CLI reads the clock itself,
    and a day that ended between an earlier time and its own would move its horizon's day."""
    return datetime.now(UTC)


def heartbeat(moment: datetime, service: str = "svc") -> AuditEvent:
    return AuditEvent(event_type=AuditEventType.HEARTBEAT, timestamp=moment, service_name=service)


@pytest.fixture
def data(tmp_path, now):
    """A data directory with something on each side of a 30-day horizon; returns it and what is past it."""

    def days_ago(days: float) -> datetime:
        return now - timedelta(days=days)

    root = tmp_path / "data"
    lake = root / "lake"
    write_events(
        lake,
        enumerate(
            [
                heartbeat(days_ago(40)),
                heartbeat(days_ago(31)),
                heartbeat(days_ago(31), "other"),
                heartbeat(days_ago(30)),
            ],
            start=1,
        ),
    )
    write_events(lake, enumerate([heartbeat(days_ago(29)), heartbeat(days_ago(1))], start=5))
    keyring = Keyring.load_or_create(root / "keys")
    sink = FileSink(FileSinkConfig(max_file_size=1000), root, keyring)
    sink.open()
    sink.write_batch(entries(range(1, 6), timestamp=days_ago(40)))  # closed: every event past the horizon
    sink.write_batch(
        entries(range(6, 9), timestamp=days_ago(40)) + entries(range(9, 11), timestamp=days_ago(1))
    )
    sink.write_batch(entries(range(11, 12), timestamp=days_ago(40)))  # the current file: never removed
    sink.close()
    rejects = root / "rejects"
    rejects.mkdir()
    for day in (40, 30, 0):
        (rejects / f"rejects-{days_ago(day):%Y%m%d}.jsonl").write_text("{}\n")
    (rejects / "rejects-notadate.jsonl").write_text("{}\n")
    deadletters = root / "deadletters"
    deadletters.mkdir()
    for name, age in (("sql.jsonl", 31), ("siem.jsonl", 29)):
        (deadletters / name).write_text("{}\n")
        stamp = days_ago(age).timestamp()
        os.utime(deadletters / name, (stamp, stamp))
    past = {
        lake / f"date={days_ago(40).date()}",
        lake / f"date={days_ago(31).date()}",
        root / "files" / "audit-1-5.jsonl.zst",
        rejects / f"rejects-{days_ago(40):%Y%m%d}.jsonl",
        deadletters / "sql.jsonl",
    }
    return root, past


def everything(root):
    return {path for path in root.rglob("*") if "keys" not in path.parts}


def test_retention_removes_exactly_what_is_past_the_horizon(data, now):
    """Partitions of days that ended before the horizon (not the horizon's own day), closed files whose
    events are all older (not one with a newer event, not the current file), rejects of days past it,
    dead-letter files last written before it. A dry run lists the same and removes nothing."""
    root, past = data
    before = everything(root)
    where = Location.of_data_dir(root)
    planned = apply_retention(where, HORIZON, dry_run=True, now=now)
    assert {removal.path for removal in planned} == past
    assert everything(root) == before
    removed = apply_retention(where, HORIZON, now=now)
    assert removed == planned and all(removal.error is None for removal in removed)
    gone = {path for path in before if any(path == p or p in path.parents for p in past)}
    assert everything(root) == before - gone
    assert (root / "files" / "audit-6-10.jsonl.zst").exists() and (root / "files" / "audit.jsonl").exists()
    assert apply_retention(where, HORIZON, now=now) == []


def test_the_cli_reports_what_it_removes_or_would(data, cli):
    """--dry-run reports "would remove" for each, then the real run "removed"; the table sums it up."""
    root, past = data
    dry = cli("retention", "--data-dir", root, "--older-than", "30d", "--dry-run", "--format", "json")
    rows = [json.loads(line) for line in dry.out.splitlines()]
    assert dry.status == 0 and {row["action"] for row in rows} == {"would remove"}
    assert {row["path"] for row in rows} == {str(path) for path in past}
    assert {row["kind"] for row in rows} == {"lake", "files", "rejects", "deadletters"}
    assert all(path.exists() for path in past)
    table = cli("retention", "--data-dir", root, "--older-than", "30d", "--format", "table")
    assert table.status == 0 and table.out.splitlines()[-1].startswith("removed 5 (")
    assert not any(path.exists() for path in past)


def test_with_only_a_lake_only_partitions_go(data, cli):
    """--lake knows nothing of files, rejects or dead letters, and leaves them."""
    root, past = data
    result = cli("retention", "--lake", root / "lake", "--older-than", "30d", "--format", "json")
    assert {json.loads(line)["kind"] for line in result.out.splitlines()} == {"lake"}
    assert {path for path in past if path.exists()} == {path for path in past if "lake" not in path.parts}


def test_a_removal_cut_short_is_finished_next_time(data, now):
    """A partition is renamed out of the lake before it is deleted; what a crash left hidden goes next run."""
    root, _ = data
    hidden = root / "lake" / ".retention-date=2020-01-01"
    (hidden / "service=svc").mkdir(parents=True)
    apply_retention(Location.of_data_dir(root), HORIZON, now=now)
    assert not hidden.exists()


def test_text_format_files_are_judged_by_their_timestamps(tmp_path, now):
    """Closed files in the sink's text format start each line with the time, and are judged by it."""
    keyring = Keyring.load_or_create(tmp_path / "keys")
    sink = FileSink(FileSinkConfig(max_file_size=500, line_format="text"), tmp_path, keyring)
    sink.open()
    sink.write_batch(entries(range(1, 6), timestamp=now - timedelta(days=40)))
    sink.write_batch(entries(range(6, 11), timestamp=now - timedelta(days=10)))
    sink.close()
    (tmp_path / "lake").mkdir()
    removed = apply_retention(Location.of_data_dir(tmp_path), HORIZON, now=now)
    assert [removal.path.name for removal in removed] == ["audit-1-5.log.zst"]


def test_retention_days_must_be_positive():
    """The [retention] section: read from the config file; a days value below 1 is an error naming it."""
    assert parse_config("[retention]\ndays = 90\nauto_cleanup = false\n").retention.days == 90
    with pytest.raises(ConfigError, match=r"retention.days: must be positive, got 0"):
        parse_config("[retention]\ndays = 0\n")


@pytest.mark.slow
def test_the_agent_applies_retention_when_it_starts(monkeypatch, now):
    """auto_cleanup (on by default): the agent removes what is past retention.days and logs each removal."""
    dirs = AgentDirs()
    for key, value in dirs.env().items():
        monkeypatch.setenv(key, value)
    try:
        long_ago, yesterday = now - timedelta(days=100), now - timedelta(days=1)
        write_events(dirs.data / "lake", enumerate([heartbeat(long_ago), heartbeat(yesterday)], start=1))
        old = dirs.data / "lake" / f"date={long_ago.date()}"
        agent = RunningAgent(dirs, "[retention]\ndays = 30\n").start()
        try:
            wait_for(lambda: not old.exists(), 10, f"{old} to be removed")
            wait_for(lambda: f"retention: removed {old}" in agent.log(), 5, "the removal in the agent's log")
            assert (dirs.data / "lake" / f"date={yesterday.date()}").exists()
        finally:
            agent.stop()
    finally:
        dirs.cleanup()


def test_a_legal_hold_keeps_the_partition_and_the_closed_file_holding_its_events(data, now, cli):
    """A hold on a period 40 days ago keeps that day's partition (its heartbeats have no user), a hold on
    user-3 the closed file holding that user's event (and of that day); both are reported as kept,
    naming the holds, and the rest of what is past the horizon goes. Lifting the holds lets the next
    run remove them."""
    root, past = data
    path = DataLayout(root).holds
    day = (now - timedelta(days=40)).replace(hour=0, minute=0, second=0, microsecond=0)
    holds.add(path, "case-1", since=day, until=day + timedelta(hours=23), reason="litigation")
    holds.add(path, "case-2", user_id="user-3")
    holds.add(path, "case-3", user_id="nobody")
    result = cli("retention", "--data-dir", root, "--older-than", "30d", "--format", "json")
    rows = {row["path"]: row for row in map(json.loads, result.out.splitlines())}
    partition, closed = root / "lake" / f"date={day.date()}", root / "files" / "audit-1-5.jsonl.zst"
    assert result.status == 0
    assert rows[str(partition)]["action"].startswith("kept: legal hold case-1 (")
    # The file's events are of that day too: both holds match it; case-3 matches nothing.
    assert rows[str(closed)]["action"].endswith(", case-2 (user_id=user-3)")
    assert "case-3" not in result.out
    assert partition.exists() and closed.exists()
    assert not any(p.exists() for p in past - {partition, closed})
    holds.remove(path, "case-1")
    holds.remove(path, "case-2")
    removed = apply_retention(Location.of_data_dir(root), HORIZON, now=now)
    assert {removal.path for removal in removed} == {partition, closed}
    assert not partition.exists() and not closed.exists()


def test_retention_below_a_compliance_floor_is_refused_and_removes_nothing(data, tmp_path, cli):
    """With compliance = ["pci"] in the config, --older-than 30d is refused naming PCI and its floor
    (366 days), and nothing is removed; an age at the floor is allowed."""
    root, past = data
    config = tmp_path / "agent.toml"
    config.write_text(f'data_dir = "{root}"\ncompliance = ["pci"]\n[retention]\ndays = 400\n')
    refused = cli("retention", "--config", config, "--older-than", "30d")
    assert refused.status == 2 and "below the retention floor of PCI, 366 days" in refused.err
    assert "--older-than 30d" in refused.err
    assert all(path.exists() for path in past)
    allowed = cli("retention", "--config", config, "--format", "json")  # retention.days: 400
    assert allowed.status == 0 and allowed.out == ""


def test_apply_retention_refuses_below_the_floor_of_the_presets_it_is_given(data, now):
    """The floors of `compliance` (the logger passes its context's) join the config's; the strictest
    wins: SOX's 2557 days over HIPAA's 2192."""
    root, past = data
    where = Location.of_data_dir(root)
    with pytest.raises(RetentionFloorError, match=r"older_than: 2200 days is below .* SOX, 2557 days"):
        apply_retention(where, timedelta(days=2200), compliance=["HIPAA", "SOX", "iso27001"], now=now)
    assert all(path.exists() for path in past)
