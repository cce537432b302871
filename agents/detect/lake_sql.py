"""What every rule's lake query shares: the events it reads, and how its candidate rows become findings.

A rule's query returns candidate rows `(key, ts, window_start, count, threshold, baseline, event_ids)`,
times as epoch seconds, ordered by key and time; `findings` applies the cooldown (finding.due) to them,
as the streaming detector does to its alerts, so that both paths report the same alerts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from auditship.agents.detect.finding import Finding, due, moment
from auditship.agents.detect.observed import NOT_OWN_SQL

Lake = Callable[[str, dict[str, Any]], list[tuple[Any, ...]]]
"""Runs SQL over the lake's `events` view with named parameters, returning every row."""
Describe = Callable[[str], dict[str, str]]
_PARAMETER = re.compile(r"\$([A-Za-z_]\w*)")


class Span(NamedTuple):
    """The alerts wanted: those whose completing event is in [since, until)."""

    since: datetime
    until: datetime

    def params(self, lookback_s: float) -> dict[str, Any]:
        """`$from`..`$until` bound what is read (the lookback before `since` too); `$since` (epoch
        seconds) which candidate rows count."""
        try:
            read_from = self.since - timedelta(seconds=lookback_s)
        except OverflowError:
            read_from = datetime.min.replace(tzinfo=self.since.tzinfo)
        return {
            "from": read_from,
            "until": self.until,
            "since": self.since.timestamp(),
        }


def source(condition: str, columns: str) -> str:
    """The events a rule reads, as a CTE body: `ts` (epoch seconds), `event_id` and `columns`, those
    that meet `condition`, within `$from`..`$until`, the detector's own alerts left out."""
    return (
        f"SELECT epoch(timestamp) AS ts, event_id, {columns} FROM events "  # noqa: S608 - fixed SQL text
        f"WHERE timestamp >= $from AND timestamp < $until AND {condition} AND {NOT_OWN_SQL}"
    )


def used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters `sql` names: DuckDB refuses a statement given any other."""
    names = set(_PARAMETER.findall(sql))
    return {name: value for name, value in params.items() if name in names}


def findings(
    rule: str,
    rows: Sequence[tuple[Any, ...]],
    *,
    describe: Describe,
    window_s: float,
    cooldown_s: float,
    max_ids: int,
) -> list[Finding]:
    found: list[Finding] = []
    last: dict[str, float] = {}
    for key, ts, start, count, threshold, baseline, ids in rows:
        if not due(last.get(key, float("-inf")), ts, cooldown_s):
            continue
        last[key] = ts
        found.append(
            Finding(
                rule=rule,
                key=describe(key),
                window_s=window_s,
                window_start=moment(start),
                window_end=moment(ts),
                count=float(count),
                threshold=float(threshold),
                baseline=None if baseline is None else float(baseline),
                event_ids=list(ids)[-max_ids:],
            )
        )
    return found
