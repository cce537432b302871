"""A measure per window against a limit and against the key's own history: the records a user exported
in an hour, the distinct resources they touched, compared with an absolute limit and with what is usual
for them.

Windows are fixed (`window_s` long, aligned to the epoch). The window's measure alerts when it reaches
`limit` (0: no absolute limit), or `factor` times the key's baseline, and at least `minimum` (factor 0:
no relative test). The baseline is the mean of the key's last `history` windows that had any of the
rule's events, and counts once there are `min_history` of them: a key without that much history (a new
user) is held to the limit alone. One alert per key and window, at the event that crosses.

Per key: the current window's measure (for a distinct measure, the values seen, which stop growing at
the threshold: at most MAX_DISTINCT), its last `max_event_ids` events, and the history's values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal, NamedTuple

import msgspec

from auditship.agents.detect.families.selected import SelectedFamily
from auditship.agents.detect.families.sliding import PositiveSeconds
from auditship.agents.detect.family import Context, RuleSettings
from auditship.agents.detect.finding import Finding, moment
from auditship.agents.detect.kinds import Key, Selection
from auditship.agents.detect.lake_sql import Lake, Span, findings, source
from auditship.agents.detect.observed import Observed
from auditship.agents.section import Positive

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
MAX_DISTINCT = 4096
"""A distinct measure's threshold is at most this, which bounds the values kept per key."""


class WindowedSettings(RuleSettings):
    window_s: PositiveSeconds = 3600.0
    limit: NonNegative = 0.0
    factor: NonNegative = 10.0
    minimum: NonNegative = 0.0
    history: Positive = 24
    min_history: Positive = 3

    def check(self, key: str) -> None:
        if not self.limit and not self.factor:
            raise ValueError(f"{key}: set a limit, a factor or both (both are 0: the rule finds nothing)")
        if self.min_history > self.history:
            raise ValueError(
                f"{key}.min_history: must be at most {key}.history ({self.history}), got {self.min_history}"
            )


class Measure(NamedTuple):
    """What a window adds up: `sum` of a number per event, or the `distinct` values an event names;
    the value of an event, and the same as SQL."""

    kind: Literal["sum", "distinct"]
    of: Callable[[Observed], float | str]
    sql: str


class WindowState(msgspec.Struct, array_like=True, gc=False):
    window: int
    threshold: float
    """inf: nothing in this window can alert (no limit, too little history)."""
    baseline: float | None
    value: float = 0.0
    seen: set[str] | None = None
    ids: list[str] = msgspec.field(default_factory=list)
    history: list[float] = msgspec.field(default_factory=list)
    alerted: bool = False


class WindowedFamily(SelectedFamily[WindowState, WindowedSettings]):
    state_type = WindowState

    def __init__(
        self,
        name: str,
        settings: WindowedSettings,
        context: Context,
        *,
        selection: Selection,
        key: Key,
        measure: Measure,
    ) -> None:
        super().__init__(name, settings, context, selection=selection, key=key)
        self.measure = measure
        self.cap = MAX_DISTINCT if measure.kind == "distinct" else float("inf")

    def observe(self, event: Observed, ts: float, lsn: int) -> Finding | None:
        if not self.selection.test(event) or (key := self.key.of(event)) is None:
            return None
        window = int(ts // self.settings.window_s)
        state = self.table.get(key)
        if state is None:
            state = WindowState(window, *self._limits([]))
            self.table.put(key, state)
        elif window > state.window:
            self._roll(state, window)
        # An event older than the key's current window (a late spool file) counts in the current one.
        if state.alerted and self.measure.kind == "distinct":
            return None  # the window has alerted: its values need not grow any more
        value = self.measure.of(event)
        if isinstance(value, str):
            seen = state.seen if state.seen is not None else set()
            if len(seen) < MAX_DISTINCT:  # beyond, the window's count is only history: kept as MAX_DISTINCT
                seen.add(value)
            state.seen = seen
            state.value = float(len(seen))
        else:
            state.value += value
        ids = state.ids
        ids.append(event.event_id)
        if len(ids) > self.context.max_ids:
            del ids[0]
        if state.alerted or state.value < state.threshold:
            return None
        state.alerted = True
        return Finding(
            rule=self.name,
            key=self.key.describe(key),
            window_s=self.settings.window_s,
            window_start=moment(state.window * self.settings.window_s),
            window_end=moment(ts),
            count=state.value,
            threshold=state.threshold,
            baseline=state.baseline,
            event_ids=list(ids),
            lsn=lsn,
        )

    def _roll(self, state: WindowState, window: int) -> None:
        """Close the key's window: its measure joins the history, and the new window's threshold is set."""
        if state.ids:  # the window had events of the rule's
            state.history.append(state.value)
            del state.history[: -self.settings.history]
        state.window = window
        state.threshold, state.baseline = self._limits(state.history)
        state.value, state.seen, state.ids, state.alerted = 0.0, None, [], False

    def _limits(self, history: list[float]) -> tuple[float, float | None]:
        """The threshold and the baseline (None: too little history) of a key with `history`."""
        settings = self.settings
        threshold = settings.limit or float("inf")
        baseline = None
        if settings.factor and len(history) >= settings.min_history:
            baseline = sum(history) / len(history)
            threshold = min(threshold, max(settings.minimum, settings.factor * baseline))
        return min(threshold, self.cap) if threshold < float("inf") else threshold, baseline

    @property
    def lookback_s(self) -> float:
        return self.context.baseline_days * 86400 + self.settings.window_s

    def findings(self, lake: Lake, span: Span) -> list[Finding]:
        total = "sum(m)" if self.measure.kind == "sum" else "count(DISTINCT m)"
        sql = f"""
            WITH src AS ({source(self.selection.sql, f"{self.key.sql} AS k, {self.measure.sql} AS m")}),
            windows AS (
                SELECT k, floor(ts / $window)::BIGINT AS w, {total} AS v
                FROM src WHERE k IS NOT NULL AND m IS NOT NULL GROUP BY k, w
            ),
            history AS (
                SELECT k, w, avg(v) OVER h AS mean, count(*) OVER h AS n FROM windows
                WINDOW h AS (PARTITION BY k ORDER BY w ROWS BETWEEN $history PRECEDING AND 1 PRECEDING)
            ),
            based AS (SELECT k, w, CASE WHEN $factor > 0 AND n >= $min_history THEN mean END AS baseline
                       FROM history),
            wanted AS (
                -- least() and greatest() pass over NULLs: each part is NULL when it does not apply
                SELECT k, w, baseline,
                       least(CASE WHEN $limit > 0 THEN $limit END,
                             CASE WHEN baseline IS NOT NULL THEN greatest($minimum, $factor * baseline) END)
                           AS wanted
                FROM based
            ),
            limits AS (SELECT k, w, baseline, least(wanted, $cap) AS threshold FROM wanted
                       WHERE wanted IS NOT NULL),
            running AS (
                SELECT k, ts, floor(ts / $window)::BIGINT AS w, {total} OVER upto AS v,
                       list_reverse(max_by(event_id, ts, $ids) OVER upto) AS ids
                FROM src WHERE k IS NOT NULL AND m IS NOT NULL
                WINDOW upto AS (PARTITION BY k, floor(ts / $window)::BIGINT ORDER BY ts
                                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            )
            SELECT running.k, ts, w * $window, v, threshold, baseline, ids
            FROM running JOIN limits USING (k, w)
            WHERE v >= threshold AND ts >= $since
            QUALIFY row_number() OVER (PARTITION BY running.k, w ORDER BY ts) = 1
            ORDER BY 1, 2
        """  # noqa: S608 - only fixed SQL text and placeholders are formatted in
        settings = self.settings
        params = {
            **span.params(self.lookback_s),
            "window": settings.window_s,
            "history": settings.history,
            "min_history": settings.min_history,
            "limit": settings.limit,
            "minimum": settings.minimum,
            "factor": settings.factor,
            "cap": min(self.cap, 1e300),
            "ids": self.context.max_ids,
        }
        rows = lake(sql, params)
        # One alert per key and window is the query's own: no cooldown on top.
        return findings(
            self.name,
            rows,
            describe=self.key.describe,
            window_s=settings.window_s,
            cooldown_s=0.0,
            max_ids=self.context.max_ids,
        )
