"""`audit-query stats` and `get_audit_statistics` count the known events exactly."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from auditship.query.stats import hour_key, statistics
from tests.query.conftest import NOW, known_events

SECURITY = {2, 6, 7, 8, 9}
"""auth_failure, access_denied, security_violation, a failed user_login, an API call answered 403."""


def expected(since_hours: float | None = None) -> dict:
    """The statistics of the known events, counted here one by one."""
    events = [
        (seq, event)
        for seq, event in known_events()
        if since_hours is None or event.timestamp >= NOW - timedelta(hours=since_hours)
    ]

    def count(values: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for value in values:
            counts[value] = counts.get(value, 0) + 1
        return dict(sorted(counts.items(), key=lambda pair: (-pair[1], pair[0])))

    return {
        "total_events": len(events),
        "security_events": sum(seq in SECURITY for seq, _ in events),
        "error_events": sum(event.outcome == "error" for _, event in events),
        "event_counts": count([event.event_type.value for _, event in events]),
        "outcome_counts": count([event.outcome.value for _, event in events]),
        "severity_counts": count([event.severity.value for _, event in events]),
        "service_counts": count([event.service_name or "_unknown" for _, event in events]),
        "hourly_counts": dict(sorted(count([hour_key(event.timestamp) for _, event in events]).items())),
    }


def test_statistics_of_the_whole_lake(lake):
    """Every count, exactly, with the security events as documented (5) and the error events (1)."""
    stats = statistics(lake)
    assert stats.pop("start") is None and stats.pop("end") is None
    assert stats == expected()
    assert (stats["total_events"], stats["security_events"], stats["error_events"]) == (13, 5, 1)
    assert stats["service_counts"] == {"api": 4, "billing": 4, "records": 4, "_unknown": 1}


def test_statistics_since_a_day_ago(lake, cli):
    """--since 24h counts the last six events only; --format json prints the API's dictionary."""
    before = datetime.now(UTC)
    result = cli("stats", "--lake", lake, "--since", "24h", "--format", "json")
    after = datetime.now(UTC)
    assert result.status == 0
    stats = json.loads(result.out)
    # The CLI reads the clock itself, later than NOW: its start lies between these two, on whatever date.
    start = datetime.fromisoformat(stats.pop("start"))
    assert before - timedelta(hours=24) <= start <= after - timedelta(hours=24)
    assert stats.pop("end") is None
    assert stats == expected(since_hours=24)
    assert stats["security_events"] == 2  # the failed login 20 hours ago, the 403 ten hours ago


def test_a_range_without_events_counts_zero(lake):
    """A range before the first event: zeros and empty maps, not an error."""
    stats = statistics(lake, end=NOW - timedelta(days=30))
    assert (stats["total_events"], stats["event_counts"], stats["hourly_counts"]) == (0, {}, {})


def test_csv_and_table(lake, cli):
    """CSV: one row per count, grouped; the table: totals first, then a section per count."""
    rows = list(csv.reader(io.StringIO(cli("stats", "--lake", lake, "--format", "csv").out)))
    assert rows[:4] == [
        ["group", "key", "events"],
        ["total", "", "13"],
        ["security", "", "5"],
        ["error", "", "1"],
    ]
    assert ["service", "_unknown", "1"] in rows
    table = cli("stats", "--lake", lake, "--format", "table").out
    assert table.splitlines()[:4] == ["events    count", "total     13", "security  5", "error     1"]
    assert "\ntype " in table and "\nhour " in table
