"""Servers some tests need (PostgreSQL, MariaDB, rsyslog...): skip with the reason on a laptop, fail in CI.

CI sets AUDITSHIP_REQUIRE_SERVICES=1, so a server that is missing there is a failure, not a skip.
"""

from __future__ import annotations

import os
import socket

import pytest


def tcp_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require(available: bool, reason: str) -> None:
    """Skip (or, under AUDITSHIP_REQUIRE_SERVICES=1, fail) the calling test when `available` is false."""
    if available:
        return
    if os.environ.get("AUDITSHIP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)
