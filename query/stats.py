"""`audit-query stats`: how many events, of which kinds, in a time range (default: the whole lake).

Counts by event type, outcome, severity, service (`_unknown` for events without one) and UTC hour, and:
  security events  security_violation, suspicious_activity, rate_limit_exceeded; authentication failures
                   (auth_failure, a user_login that failed, an API call answered 401); access denials
                   (access_denied, a permission_check that failed, an API call answered 403)
  error events     events whose outcome is error (the system failed, as opposed to refusing)
--format json prints one JSON object, the Python API's `get_audit_statistics()`; csv one row per count.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypedDict

from auditship.ondisk.lake_layout import UNKNOWN_SERVICE
from auditship.query import location, output
from auditship.query.filters import EventFilter
from auditship.query.lake import LakeReader
from auditship.query.timespec import time_range
from shipper.event import AuditEventType, AuditOutcome

SECURITY_TYPES = frozenset(
    {
        AuditEventType.SECURITY_VIOLATION,
        AuditEventType.SUSPICIOUS_ACTIVITY,
        AuditEventType.RATE_LIMIT_EXCEEDED,
        AuditEventType.AUTH_FAILURE,
        AuditEventType.ACCESS_DENIED,
    }
)
FAILED_CHECK_TYPES = frozenset({AuditEventType.USER_LOGIN, AuditEventType.PERMISSION_CHECK})
"""A failed login is an authentication failure; a failed permission check, an access denial."""
REFUSED_STATUS = (401, 403)

# Each count's name in the table and the CSV.
_SECTIONS = {
    "event_counts": "type",
    "outcome_counts": "outcome",
    "severity_counts": "severity",
    "service_counts": "service",
    "hourly_counts": "hour",
}


class Statistics(TypedDict):
    start: str | None
    end: str | None
    total_events: int
    security_events: int
    error_events: int
    event_counts: dict[str, int]
    outcome_counts: dict[str, int]
    severity_counts: dict[str, int]
    service_counts: dict[str, int]
    hourly_counts: dict[str, int]


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "stats",
        parents=[common],
        help="counts by type, outcome, severity, service and hour; security and error events",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--since", metavar="TIME", help="from this time on: ISO 8601 or an age (15m, 24h, 7d)"
    )
    parser.add_argument("--until", metavar="TIME", help="before this time: ISO 8601 or an age")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    start, end = time_range(args.since, args.until)
    write_statistics(
        statistics(location.resolve(args).lake, start, end), output.chosen(args.output_format), sys.stdout
    )
    return 0


def is_security(event_type: str, outcome: str, status_code: int | None) -> bool:
    """The definition above, for one event (the SQL below says the same)."""
    return (
        event_type in SECURITY_TYPES
        or (event_type in FAILED_CHECK_TYPES and outcome == AuditOutcome.FAILURE)
        or status_code in REFUSED_STATUS
    )


def _security_condition() -> tuple[str, list[Any]]:
    kinds, checks = sorted(SECURITY_TYPES), sorted(FAILED_CHECK_TYPES)
    return (
        f"(event_type IN ({', '.join('?' * len(kinds))})"
        f" OR (event_type IN ({', '.join('?' * len(checks))}) AND outcome = ?)"
        f" OR status_code IN ({', '.join('?' * len(REFUSED_STATUS))}))"
    ), [*kinds, *checks, AuditOutcome.FAILURE.value, *REFUSED_STATUS]


def hour_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:00:00Z")


def statistics(lake: Path, start: datetime | None = None, end: datetime | None = None) -> Statistics:
    """One pass over the events in [start, end), every count at once: a histogram per column (a map of
    value to count, which beat GROUPING SETS by a third on the bench's lake)."""
    wanted = EventFilter(start=start, end=end)
    condition, params = wanted.where()
    security, security_params = _security_condition()
    sql = f"""
        SELECT count(*), count(*) FILTER (WHERE {security}),
               histogram(event_type), histogram(outcome), histogram(severity),
               histogram(coalesce(service_name, ?)), histogram(date_trunc('hour', timestamp))
        FROM events WHERE {condition}
    """  # noqa: S608 - only placeholders are formatted in
    with LakeReader(lake, wanted.prune().keeps) as reader:
        row = reader.execute(sql, [*security_params, UNKNOWN_SERVICE, *params]).fetchone()
    assert row is not None  # an aggregate without GROUP BY has one row, even over no events
    total, security_events, *histograms = row
    types, outcomes, severities, services = (_by_count(counts or {}) for counts in histograms[:4])
    return Statistics(
        start=start.isoformat() if start else None,
        end=end.isoformat() if end else None,
        total_events=total,
        security_events=security_events,
        error_events=outcomes.get(AuditOutcome.ERROR.value, 0),
        event_counts=types,
        outcome_counts=outcomes,
        severity_counts=severities,
        service_counts=services,
        hourly_counts={hour_key(hour): n for hour, n in sorted((histograms[4] or {}).items())},
    )


def _by_count(counts: dict[str, int]) -> dict[str, int]:
    """Most frequent first; ties by name."""
    return dict(sorted(counts.items(), key=lambda pair: (-pair[1], pair[0])))


def write_statistics(stats: Statistics, output_format: output.OutputFormat, out: TextIO) -> None:
    if output_format == "json":
        output.write_json(stats, out)
        return
    totals = [
        ("total", stats["total_events"]),
        ("security", stats["security_events"]),
        ("error", stats["error_events"]),
    ]
    plain: dict[str, Any] = dict(stats)
    sections = [(name, plain[key]) for key, name in _SECTIONS.items()]
    if output_format == "csv":
        rows = [(name, "", n) for name, n in totals]
        rows += [(name, key, n) for name, counts in sections for key, n in counts.items()]
        output.write_rows(("group", "key", "events"), rows, "csv", out)
        return
    output.write_table(("events", "count"), [(name, f"{n:,}") for name, n in totals], out)
    for name, counts in sections:
        out.write("\n")
        output.write_table((name, "events"), [(key, f"{n:,}") for key, n in counts.items()], out)
