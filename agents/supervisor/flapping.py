"""Flapping: a worker that keeps dying is given up on instead of being restarted forever."""

from __future__ import annotations

import collections


class FlapDetector:
    def __init__(self, max_exits: int, window_s: float) -> None:
        self.max_exits = max_exits
        self.window_s = window_s
        self._exits: collections.deque[float] = collections.deque()

    def record_exit(self, at: float) -> bool:
        """Note an unexpected exit at monotonic time `at`; True when the worker is flapping."""
        self._exits.append(at)
        while self._exits and at - self._exits[0] > self.window_s:
            self._exits.popleft()
        return len(self._exits) >= self.max_exits

    @property
    def recent_exits(self) -> int:
        return len(self._exits)
