"""A write that keeps failing (a full disk): said once, then at a slow, steady interval, and shown in
`audit-agent status` with since when and what waits, until it works again, which is said too."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

REPEAT_LOG_S = 60.0


class WriteFailure:
    def __init__(self, what: str, log: logging.Logger, repeat_s: float = REPEAT_LOG_S) -> None:
        self.what = what
        self._log = log
        self._repeat_s = repeat_s
        self._since: float | None = None  # wall clock, for people
        self._next_log = 0.0
        self._attempts = 0
        self.problem: str | None = None
        """What status shows while it fails; None once it works."""

    def failed(self, error: OSError, consequence: str, now: float | None = None) -> None:
        """Another failed attempt; `consequence` says what it means meanwhile ("812 events held")."""
        now = time.monotonic() if now is None else now
        if self._since is None:
            self._since = time.time()
            self._next_log = now
        self._attempts += 1
        since = datetime.fromtimestamp(self._since, UTC).isoformat(timespec="seconds")
        self.problem = f"{self.what} failing since {since}: {error}; {consequence}"
        if now >= self._next_log:
            self._next_log = now + self._repeat_s
            self._log.error(
                "%s (attempt %d; retrying, next report in %.0fs)",
                self.problem,
                self._attempts,
                self._repeat_s,
            )

    def succeeded(self) -> None:
        if self._since is None:
            return
        self._log.warning(
            "%s works again after %d failed attempts over %.0fs",
            self.what,
            self._attempts,
            time.time() - self._since,
        )
        self._since, self._attempts, self.problem = None, 0, None
