"""Events in a sliding window: `threshold` events under one key within `window_s` (brute force per user
or per address, rate-limit storms).

Per key the last `threshold` events' times and ids, so the test is exact: the oldest of them is within
the window of the newest.
"""

from __future__ import annotations

import msgspec

from auditship.agents.detect.families.sliding import SlidingFamily
from auditship.agents.detect.finding import Finding, due
from auditship.agents.detect.observed import Observed


class CountState(msgspec.Struct, array_like=True, gc=False):
    times: list[float]
    ids: list[str]
    alerted: float = float("-inf")


class CountFamily(SlidingFamily[CountState]):
    state_type = CountState

    def observe(self, event: Observed, ts: float, lsn: int) -> Finding | None:
        if not self.selection.test(event) or (key := self.key.of(event)) is None:
            return None
        state = self.table.get(key)
        if state is None:
            state = CountState([], [])
            self.table.put(key, state)
        times, ids = state.times, state.ids
        times.append(ts)
        ids.append(event.event_id)
        threshold, window = self.settings.threshold, self.settings.window_s
        if len(times) > threshold:  # by more than one when the threshold was lowered since a restart
            del times[:-threshold], ids[:-threshold]
        if len(times) < threshold or ts - times[0] > window or not due(state.alerted, ts, window):
            return None
        state.alerted = ts
        return self.finding(key, times[0], ts, ids, lsn)
