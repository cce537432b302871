"""What the sliding-window families share: their settings (`threshold` within `window_s`), the finding
they make, and their lake query, a window function over the events of each key.

After an alert a key is quiet for a window, on both paths (finding.due).
"""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec

from auditship.agents.detect.families.selected import SelectedFamily
from auditship.agents.detect.family import RuleSettings
from auditship.agents.detect.finding import Finding, moment
from auditship.agents.detect.lake_sql import Lake, Span, findings, source
from auditship.agents.section import Positive

PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]
S = TypeVar("S")


class SlidingSettings(RuleSettings):
    threshold: Positive = 10
    window_s: PositiveSeconds = 300.0


class SlidingFamily(SelectedFamily[S, SlidingSettings]):
    aggregate = "count(*)"
    """What is counted in the window, in SQL, over the columns `columns_sql` reads."""
    present = "k IS NOT NULL"
    """The rows the streaming side counts too (it skips an event without a key)."""

    def columns_sql(self) -> str:
        """The columns the lake query reads besides `ts` and `event_id`: the key as `k`."""
        return f"{self.key.sql} AS k"

    def finding(self, key: str, first: float, ts: float, ids: list[str], lsn: int) -> Finding:
        threshold = float(self.settings.threshold)
        return Finding(
            rule=self.name,
            key=self.key.describe(key),
            window_s=self.settings.window_s,
            window_start=moment(first),
            window_end=moment(ts),
            count=threshold,
            threshold=threshold,
            event_ids=ids[-self.context.max_ids :],
            lsn=lsn,
        )

    @property
    def lookback_s(self) -> float:
        return self.settings.window_s

    def findings(self, lake: Lake, span: Span) -> list[Finding]:
        sql = f"""
            WITH src AS ({source(self.selection.sql, self.columns_sql())}),
            counted AS (
                SELECT k, ts, min(ts) OVER win AS first_ts, {self.aggregate} OVER win AS n,
                       list_reverse(max_by(event_id, ts, $ids) OVER win) AS ids
                FROM src WHERE {self.present}
                WINDOW win AS (PARTITION BY k ORDER BY ts RANGE BETWEEN $window PRECEDING AND CURRENT ROW)
            )
            SELECT k, ts, first_ts, n, $threshold, NULL, ids FROM counted
            WHERE n >= $threshold AND ts >= $since ORDER BY k, ts
        """  # noqa: S608 - only fixed SQL text and placeholders are formatted in
        window = self.settings.window_s
        params = {
            **span.params(self.lookback_s),
            **self.selection.params,
            "window": window,
            "threshold": self.settings.threshold,
            "ids": min(self.settings.threshold, self.context.max_ids),
        }
        rows = lake(sql, params)
        return findings(
            self.name,
            rows,
            describe=self.key.describe,
            window_s=window,
            cooldown_s=window,
            max_ids=self.context.max_ids,
        )
