"""wait_for: the one way tests wait, bounded in time, reporting what it last saw; poll_until where not
seeing it is an answer, not a failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(probe: Callable[[], T], timeout: float, interval: float = 0.05) -> T | None:
    """Call `probe` until it returns something truthy, at most `timeout` seconds; its last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    return last


def wait_for(probe: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds with its last value."""
    last = poll_until(probe, timeout, interval)
    if not last:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last saw {last!r}")
    return last
