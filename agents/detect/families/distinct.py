"""Distinct values in a sliding window: one key seen with `threshold` distinct values within `window_s`
(password spraying and credential stuffing: one address failing for many users).

Per key the `threshold` values seen most recently, each with its latest time and event id; the test is
exact: the least recent of them is within the window of the newest event. Memory per key is bounded by
the threshold however many values an attacker cycles through.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from auditship.agents.detect.families.sliding import SlidingFamily, SlidingSettings
from auditship.agents.detect.family import Context
from auditship.agents.detect.finding import Finding, due
from auditship.agents.detect.kinds import Key, Selection
from auditship.agents.detect.observed import Observed


class DistinctState(msgspec.Struct, array_like=True, gc=False):
    seen: dict[str, tuple[float, str]]
    """value -> (its latest time, that event's id), least recently seen first."""
    alerted: float = float("-inf")


class DistinctFamily(SlidingFamily[DistinctState]):
    state_type = DistinctState
    aggregate = "count(DISTINCT v)"
    present = "k IS NOT NULL AND v IS NOT NULL"

    def __init__(
        self,
        name: str,
        settings: SlidingSettings,
        context: Context,
        *,
        selection: Selection,
        key: Key,
        value: tuple[Callable[[Observed], str | None], str],
    ) -> None:
        """`value`: what is counted distinct, as a function of the event and as SQL."""
        super().__init__(name, settings, context, selection=selection, key=key)
        self.value_of, self.value_sql = value

    def columns_sql(self) -> str:
        return f"{self.key.sql} AS k, {self.value_sql} AS v"

    def observe(self, event: Observed, ts: float, lsn: int) -> Finding | None:
        if not self.selection.test(event) or (key := self.key.of(event)) is None:
            return None
        if (value := self.value_of(event)) is None:
            return None
        state = self.table.get(key)
        if state is None:
            state = DistinctState({})
            self.table.put(key, state)
        seen = state.seen
        seen.pop(value, None)
        seen[value] = (ts, event.event_id)
        threshold, window = self.settings.threshold, self.settings.window_s
        while len(seen) > threshold:
            del seen[next(iter(seen))]
        if len(seen) < threshold:
            return None
        first = next(iter(seen.values()))[0]
        if ts - first > window or not due(state.alerted, ts, window):
            return None
        state.alerted = ts
        return self.finding(key, first, ts, [event_id for _, event_id in seen.values()], lsn)
