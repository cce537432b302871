"""Activity at an hour of the day (UTC) far from every hour a key has been active at in the past
`baseline_days`, once it has been active on at least `min_active_days` of them: a user who works office
hours, at 03:00. "Far" is more than `margin_hours` from each of them, so staying an hour late is not
an alert.

Per key: the last day it was active, which of the `baseline_days` days before were active (a bitmask),
and for each hour of the day how many days ago it was last active at that hour (a byte each, 255: not
within reach). The first event at an hour far from the key's hours alerts, then the key is quiet for
`cooldown_s`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from auditship.agents.detect.families.selected import SelectedFamily
from auditship.agents.detect.families.sliding import PositiveSeconds
from auditship.agents.detect.family import Context, RuleSettings
from auditship.agents.detect.finding import Finding, due, moment
from auditship.agents.detect.kinds import Key, Selection
from auditship.agents.detect.lake_sql import Lake, Span, findings, source
from auditship.agents.detect.observed import Observed
from auditship.agents.section import Positive

DAY_S = 86400
HOUR_S = 3600
NEVER = 255


class HoursSettings(RuleSettings):
    baseline_days: Positive = 30
    min_active_days: Positive = 7
    margin_hours: Annotated[int, msgspec.Meta(ge=0, le=11)] = 2
    cooldown_s: PositiveSeconds = 3600.0

    def check(self, key: str) -> None:
        if self.baseline_days >= NEVER:
            raise ValueError(f"{key}.baseline_days: must be below {NEVER}, got {self.baseline_days}")
        if self.min_active_days > self.baseline_days:
            raise ValueError(
                f"{key}.min_active_days: must be at most {key}.baseline_days ({self.baseline_days}), "
                f"got {self.min_active_days}"
            )


class HoursState(msgspec.Struct, array_like=True, gc=False):
    day: int
    """The last day (days since the epoch) the key was active."""
    days: int
    """Bit i set: active on `day - i`."""
    hours: bytearray
    """Per hour of the day: days from its last activity at that hour to `day` (NEVER: not within reach)."""
    alerted: float = float("-inf")


class HoursFamily(SelectedFamily[HoursState, HoursSettings]):
    state_type = HoursState

    def __init__(
        self, name: str, settings: HoursSettings, context: Context, *, selection: Selection, key: Key
    ) -> None:
        super().__init__(name, settings, context, selection=selection, key=key)
        self._mask = (1 << (settings.baseline_days + 1)) - 1
        margin = settings.margin_hours
        self._near = [[(hour + offset) % 24 for offset in range(-margin, margin + 1)] for hour in range(24)]

    def observe(self, event: Observed, ts: float, lsn: int) -> Finding | None:
        if (key := self.key.of(event)) is None or not self.selection.test(event):
            return None
        day, hour = int(ts // DAY_S), int(ts % DAY_S // HOUR_S)
        state = self.table.get(key)
        if state is None:
            self.table.put(key, HoursState(day, 1, _first_hours(hour)))
            return None
        if day == state.day and not state.hours[hour]:
            return None  # active at this hour today already (so today is counted): nearly every event
        if day < state.day:  # late: remembered, not judged against the days since
            ago = state.day - day
            state.days |= (1 << ago) & self._mask
            state.hours[hour] = min(state.hours[hour], ago)
            return None
        if day > state.day:
            _advance(state, day - state.day, self._mask)
        hours, reach = state.hours, self.settings.baseline_days
        # The hour itself first: nearly always the answer, without looking at its neighbours.
        usual = hours[hour] <= reach or any(hours[near] <= reach for near in self._near[hour])
        hours[hour] = 0
        state.days |= 1
        active = (state.days >> 1).bit_count()
        if (
            usual
            or active < self.settings.min_active_days
            or not due(state.alerted, ts, self.settings.cooldown_s)
        ):
            return None
        state.alerted = ts
        return Finding(
            rule=self.name,
            key=self.key.describe(key),
            window_s=self.settings.baseline_days * DAY_S,
            window_start=moment((day - self.settings.baseline_days) * DAY_S),
            window_end=moment(ts),
            count=float(active),
            threshold=float(self.settings.min_active_days),
            event_ids=[event.event_id],
            lsn=lsn,
        )

    @property
    def lookback_s(self) -> float:
        return (self.settings.baseline_days + 1) * DAY_S

    def findings(self, lake: Lake, span: Span) -> list[Finding]:
        sql = f"""
            WITH src AS ({source(self.selection.sql, f"{self.key.sql} AS k")}),
            firsts AS (
                SELECT k, floor(ts / {DAY_S})::BIGINT AS d, floor(ts % {DAY_S} / {HOUR_S})::INTEGER AS h,
                       min(ts) AS ts, arg_min(event_id, ts) AS event_id
                FROM src WHERE k IS NOT NULL GROUP BY k, d, h
            ),
            active AS (SELECT DISTINCT k, d FROM firsts),
            judged AS (
                SELECT f.k, f.ts, f.d, f.event_id,
                       (SELECT count(*) FROM active a WHERE a.k = f.k AND a.d >= f.d - $days AND a.d < f.d)
                           AS active_days,
                       EXISTS (SELECT 1 FROM firsts p
                               WHERE p.k = f.k AND least(abs(p.h - f.h), 24 - abs(p.h - f.h)) <= $margin
                                 AND p.d >= f.d - $days AND (p.d < f.d OR p.ts < f.ts)) AS usual
                FROM firsts f WHERE f.ts >= $since
            )
            SELECT k, ts, (d - $days) * {DAY_S}, active_days, $min_days, NULL, [event_id]
            FROM judged WHERE NOT usual AND active_days >= $min_days ORDER BY k, ts
        """  # noqa: S608 - only fixed SQL text and placeholders are formatted in
        settings = self.settings
        params = {
            **span.params(self.lookback_s),
            "days": settings.baseline_days,
            "min_days": settings.min_active_days,
            "margin": settings.margin_hours,
        }
        rows = lake(sql, params)
        window = settings.baseline_days * DAY_S
        return findings(
            self.name,
            rows,
            describe=self.key.describe,
            window_s=window,
            cooldown_s=settings.cooldown_s,
            max_ids=self.context.max_ids,
        )


def _first_hours(hour: int) -> bytearray:
    hours = bytearray([NEVER]) * 24
    hours[hour] = 0
    return hours


def _advance(state: HoursState, days: int, mask: int) -> None:
    """Move the key's last day `days` on: every hour's age grows by as much."""
    state.day += days
    state.days = (state.days << days) & mask
    state.hours = bytearray(min(NEVER, age + days) for age in state.hours)
