"""The deployment fixtures of this directory (hosting.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.hosting import SYSTEM_PYTHON, Host, Installs, ensure_users
from tests.services import require


@pytest.fixture(scope="module")
def installs() -> Installs:
    require(os.geteuid() == 0 and shutil.which("setpriv") is not None, "needs root and setpriv (CI has both)")
    require(SYSTEM_PYTHON.exists(), f"needs {SYSTEM_PYTHON} (Debian's python3), which other users can run")
    ensure_users()
    return Installs()


@pytest.fixture
def host(installs: Installs) -> Iterator[Host]:
    root = Path(tempfile.mkdtemp(prefix="as-dep-", dir="/tmp"))
    deployment = Host(root, installs)
    yield deployment
    if deployment.agent is not None and deployment.agent.poll() is None:
        deployment.agent.kill()
        deployment.agent.wait(10)
    shutil.rmtree(root, ignore_errors=True)
