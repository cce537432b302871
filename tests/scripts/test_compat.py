"""The compatibility matrix, scripts/compat.py: the middleware tests pass against the oldest Starlette,
FastAPI and grpcio that pyproject.toml declares and against their newest releases, each in a virtualenv
of its own (cached between runs). It installs from PyPI: without it the test is skipped with the
reason, and fails in CI (AUDITSHIP_REQUIRE_SERVICES=1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import require, tcp_reachable

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compat.py"
# Above the sum of the script's own bounds on its steps (which end a hung one), two combinations' worth.
MATRIX_TIMEOUT_S = 2 * (120 + 300 + 300 + 300) + 60


@pytest.mark.slow
@pytest.mark.timeout(MATRIX_TIMEOUT_S + 30)
def test_the_middleware_tests_pass_on_the_oldest_and_the_newest_supported_frameworks() -> None:
    """Every combination passes; its line names the versions it ran, and a failing one's pytest output
    is the failure message."""
    require(
        tcp_reachable("pypi.org", 443, timeout=5), "pypi.org:443 unreachable: the matrix installs from PyPI"
    )
    # check=False: the output is the assertion's message.
    result = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=MATRIX_TIMEOUT_S, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split(" ")[0] for line in result.stdout.splitlines() if " passed: " in line] == [
        "oldest",
        "newest",
    ]
