"""`audit-query search` finds exactly the events every filter asks for, newest first, reading only the
partitions the filters can need, and never an event twice while parts are merged."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta, timezone

import pytest

from auditship.ondisk.lake_layout import PART, live_parts
from auditship.ondisk.lines import encode_json
from auditship.query.filters import EventFilter
from auditship.query.lake import LakeReader
from auditship.query.search import search
from shipper.event import AuditEvent, AuditEventType
from tests.query.conftest import ALL, NOW, known_events
from tests.query.lakes import connect, write_events


def seqs(out: str) -> list[int]:
    return [json.loads(line)["wal_seq"] for line in out.splitlines()]


FILTERS = [
    ([], ALL),
    (["--type", "user_login"], [8, 1]),
    (["--type", "USER_LOGIN", "--type", "auth_failure"], [8, 2, 1]),
    (["--user", "mallory"], [7, 6, 2]),
    (["--resource", "document"], [6, 4, 3]),
    (["--resource", "document:1"], [6, 3]),
    (["--ip", "203.0.113.9"], [7, 6, 2]),
    (["--service", "api"], [13, 9, 7, 5]),
    (["--outcome", "failure"], [9, 8, 7, 6, 2]),
    (["--outcome", "error", "--outcome", "unknown"], [12, 5]),
    (["--severity", "high"], [10, 7, 5]),
    (["--severity", "MEDIUM"], [13, 10, 8, 7, 6, 5, 2]),
    (["--severity", "info"], ALL),
    (["--text", "DOCUMENT"], [4, 3]),
    (["--text", "export"], [10]),
    (["--text", "post"], [9]),  # in the action, lower-cased from the message's "POST"
    (["--since", "24h"], [13, 12, 11, 10, 9, 8]),
    (["--since", "24h", "--until", "3h"], [10, 9, 8]),
    (["--since", "1w"], ALL[:11]),  # 168 hours: back to seq 3, 150 hours ago
    (["--until", "7d"], [2, 1]),
    (["--user", "alice", "--since", "7d", "--type", "data_export"], [10]),
    (["--service", "nosuch"], []),
    (["--limit", "2"], [13, 12]),
    (["--limit", "0"], ALL),
]
"""Search arguments and the known events they find (by seq), newest first."""


@pytest.mark.parametrize(("args", "expected"), FILTERS)
def test_each_filter_finds_exactly_its_events_newest_first(lake, cli, args, expected):
    """Every filter, alone and combined, against the known set: the exact events, newest first."""
    result = cli("search", "--lake", lake, *args)
    assert (result.status, result.err) == (0, "")
    assert seqs(result.out) == expected


def test_absolute_times_are_utc_unless_they_say_otherwise(lake, cli):
    """--since/--until take ISO 8601: naive times are UTC, offsets are honoured, --until is exclusive."""
    naive = (NOW - timedelta(hours=100)).replace(tzinfo=None).isoformat()
    assert seqs(cli("search", "--lake", lake, "--since", naive).out) == ALL[:10]
    in_paris = (NOW - timedelta(hours=100)).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert seqs(cli("search", "--lake", lake, "--since", in_paris).out) == ALL[:10]
    until = (NOW - timedelta(hours=100)).isoformat()
    assert seqs(cli("search", "--lake", lake, "--until", until).out) == [3, 2, 1]


def test_every_field_comes_back_as_it_was_emitted(lake, cli):
    """JSON output is the file sink's record of the very event: every field, maps and tags included."""
    out = cli("search", "--lake", lake, "--limit", "0").out.splitlines()
    assert [json.loads(line) for line in reversed(out)] == [
        json.loads(encode_json(seq, event)) for seq, event in known_events()
    ]
    found = dict(search(lake, EventFilter(), limit=None))
    assert found == dict(known_events())


def test_csv_and_table_output(lake, cli):
    """CSV: a header of every field, one row per event; table: the columns a person scans."""
    rows = list(
        csv.DictReader(io.StringIO(cli("search", "--lake", lake, "--user", "carol", "--format", "csv").out))
    )
    assert [row["wal_seq"] for row in rows] == ["13", "9", "8"]
    assert rows[0]["compliance"] == '["SOX","GDPR"]' and rows[0]["changes"] == '{"limit":{"from":5,"to":10}}'
    table = cli("search", "--lake", lake, "--user", "carol", "--format", "table")
    lines = table.out.splitlines()
    assert lines[0].split() == [
        "time",
        "severity",
        "type",
        "outcome",
        "service",
        "user",
        "resource",
        "ip",
        "message",
    ]
    assert "configuration_change" in lines[1] and len(lines) == 4
    limited = cli("search", "--lake", lake, "--format", "table", "--limit", "1")
    assert limited.err == "(the newest 1; --limit 0 shows all)\n"


def test_data_dir_and_config_find_the_lake(data_dir, tmp_path, cli, monkeypatch):
    """--data-dir DIR reads DIR/lake; --config reads the lake of the config's data_dir and sink path."""
    monkeypatch.delenv("AUDITSHIP_DATA_DIR", raising=False)  # it would override the config's data_dir
    assert seqs(cli("search", "--data-dir", data_dir, "--user", "bob").out) == [12, 5, 4]
    config = tmp_path / "agent.toml"
    config.write_text(f'data_dir = "{data_dir}"\n[sinks.parquet]\npath = "lake"\n')
    assert seqs(cli("search", "--config", config, "--user", "bob").out) == [12, 5, 4]


def thirty_days(tmp_path):
    """One event a day per service for 30 days, the newest an hour ago: 60 partitions."""
    lake = tmp_path / "lake"
    events = [
        AuditEvent(
            event_type=AuditEventType.HEARTBEAT,
            timestamp=NOW - timedelta(days=day, hours=1),
            service_name=name,
        )
        for day in range(30)
        for name in ("a", "b")
    ]
    write_events(lake, enumerate(events, start=1))
    return lake


def test_a_week_over_a_month_reads_a_weeks_partitions(tmp_path):
    """--since 7d opens the parts of the last 7 days' dates (8 at most, today's included), and --service
    only that service's; the answer is the same as reading everything."""
    lake = thirty_days(tmp_path)
    assert len(live_parts(lake)) == 60
    week = EventFilter(start=NOW - timedelta(days=7))
    with LakeReader(lake, week.prune().keeps) as reader:
        dates = {part.parent.parent.name.removeprefix("date=") for part in reader.parts}
    assert len(dates) <= 8 and min(dates) >= str((NOW - timedelta(days=7)).date())
    assert len(search(lake, week, limit=None)) == 7 * 2
    only_a = EventFilter(start=NOW - timedelta(days=7), service="a")
    with LakeReader(lake, only_a.prune().keeps) as reader:
        assert {part.parent.name for part in reader.parts} == {"service=a"}
    assert len(search(lake, only_a, limit=None)) == 7


def merge(directory, *, remove_sources):
    """What compaction does to a partition: one part covering all of its parts' range."""
    sources = sorted(directory.glob("part-*.parquet"))
    first, last = PART.match(sources[0].name)[1], PART.match(sources[-1].name)[2]
    con = connect()
    con.execute(
        "COPY (SELECT * FROM read_parquet(?)) TO ? (FORMAT parquet, COMPRESSION zstd)",
        [[str(source) for source in sources], str(directory / f"part-{first}-{last}.parquet")],
    )
    con.close()
    if remove_sources:
        for source in sources:
            source.unlink()


def three_flushes(tmp_path):
    """Three flushes of two events each into one partition: three parts."""
    lake = tmp_path / "lake"
    for first in (1, 3, 5):
        write_events(
            lake,
            [
                (seq, AuditEvent(event_type=AuditEventType.HEARTBEAT, service_name="s", timestamp=NOW))
                for seq in (first, first + 1)
            ],
        )
    return lake


def test_a_merged_part_beside_the_parts_it_replaces_is_read_once(tmp_path, cli):
    """Compaction writes the merged part before deleting the ones it covers: each event is seen once."""
    lake = three_flushes(tmp_path)
    (directory,) = {part.parent for part in live_parts(lake)}
    merge(directory, remove_sources=False)
    assert len(list(directory.iterdir())) == 4
    assert seqs(cli("search", "--lake", lake).out) == [6, 5, 4, 3, 2, 1]


def test_a_part_that_vanishes_between_listing_and_reading_is_listed_again(tmp_path):
    """Compaction finishing (the merged part in place, the merged ones gone) between the listing and the
    query: the reader lists again and answers from the merged part, each event once."""
    lake = three_flushes(tmp_path)
    with LakeReader(lake) as reader:
        assert len(reader.parts) == 3
        merge(reader.parts[0].parent, remove_sources=True)
        rows = reader.execute("SELECT wal_seq FROM events ORDER BY wal_seq").fetchall()
        assert len(reader.parts) == 1
    assert [seq for (seq,) in rows] == [1, 2, 3, 4, 5, 6]
