"""`audit-query anomalies`: the agent's detection rules over the lake, for an investigation, or to tune a
threshold before turning a rule on.

The rules and their thresholds are the agent's (`[detect]` of the --config file, else the defaults),
built from the same table as the streaming detector (auditship.agents.detect.rules), and each reports
what the detector would have sent for the events of the range: an alert per rule and key, then none for
that key within the rule's cooldown. Baselines (a user's usual export volume, resources, working hours)
come from up to `detect.baseline_days` before --since. --rule runs that rule even when the agent's
config turns it off. The detector's own alerts are never counted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO, TypedDict

from auditship.agents.detect.config import DetectConfig
from auditship.agents.detect.finding import Finding
from auditship.agents.detect.lake_sql import Span, used
from auditship.agents.detect.rules import BY_NAME, Rule
from auditship.query import location, output
from auditship.query.errors import QueryError
from auditship.query.filters import EventFilter
from auditship.query.lake import LakeReader
from auditship.query.timespec import time_range

EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)
COLUMNS = ("time", "rule", "severity", "key", "count", "threshold", "baseline", "window_start", "event_ids")


class Anomaly(TypedDict):
    """One finding, as `--format json` prints it and `AuditLogger.detect_anomalies` returns it: the
    fields of the `details` of the alert the detector sends, and the rule's severity and event type."""

    rule: str
    severity: str
    event_type: str
    key: dict[str, str]
    window_s: float
    window_start: str
    window_end: str
    count: float
    threshold: float
    baseline: float | None
    event_ids: list[str]


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "anomalies",
        parents=[common],
        help="the agent's detection rules over the lake: brute force, spraying, exports, off hours...",
        description=__doc__ + "\nrules: " + ", ".join(BY_NAME),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--since", metavar="TIME", help="alerts from this time on: ISO 8601 or an age (15m, 24h, 7d)"
    )
    parser.add_argument("--until", metavar="TIME", help="alerts before this time: ISO 8601 or an age")
    parser.add_argument(
        "--rule", action="append", default=[], metavar="RULE", help="only this rule (repeatable)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    start, end = time_range(args.since, args.until)
    config = location.agent_config(args).detect
    found = anomalies(location.resolve(args).lake, config, start, end, args.rule)
    write_anomalies(found, output.chosen(args.output_format), sys.stdout)
    return 0


def anomalies(
    lake: Path,
    config: DetectConfig,
    start: datetime | None = None,
    end: datetime | None = None,
    rules: Collection[str] = (),
) -> list[Anomaly]:
    """What the rules (those `config` enables, or `rules`) find among the events in [start, end), oldest
    first; QueryError for a rule that does not exist."""
    try:
        built = config.build(rules)
    except ValueError as exc:
        raise QueryError(f"--rule: {exc}") from exc
    if not built:
        return []
    lookback = timedelta(seconds=max(family.lookback_s for _, family in built))
    read_from = _earlier(start, lookback) if start is not None else None
    span = Span(start or EARLIEST, end or LATEST)
    found: list[Anomaly] = []
    with LakeReader(lake, EventFilter(start=read_from, end=end).prune().keeps) as reader:

        def lake_rows(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
            return reader.execute(sql, used(sql, params)).fetchall()

        for rule, family in built:
            found.extend(_anomaly(rule, finding) for finding in family.findings(lake_rows, span))
    return sorted(found, key=lambda anomaly: (anomaly["window_end"], anomaly["rule"]))


def _earlier(moment: datetime, by: timedelta) -> datetime:
    try:
        return moment - by
    except OverflowError:
        return EARLIEST


def _anomaly(rule: Rule, finding: Finding) -> Anomaly:
    return Anomaly(
        rule=rule.name,
        severity=rule.severity.value,
        event_type=rule.event_type.value,
        key=finding.key,
        window_s=finding.window_s,
        window_start=finding.window_start.isoformat(),
        window_end=finding.window_end.isoformat(),
        count=finding.count,
        threshold=finding.threshold,
        baseline=finding.baseline,
        event_ids=finding.event_ids,
    )


def write_anomalies(found: Sequence[Anomaly], output_format: output.OutputFormat, out: TextIO) -> None:
    if output_format == "json":
        for anomaly in found:
            output.write_json(anomaly, out)
        return
    rows = [
        (
            anomaly["window_end"],
            anomaly["rule"],
            anomaly["severity"],
            " ".join(f"{field}={value}" for field, value in anomaly["key"].items()),
            f"{anomaly['count']:g}",
            f"{anomaly['threshold']:g}",
            "" if anomaly["baseline"] is None else f"{anomaly['baseline']:g}",
            anomaly["window_start"],
            anomaly["event_ids"],
        )
        for anomaly in found
    ]
    output.write_rows(COLUMNS, rows, output_format, out)
