"""Every test starts from the same environment, whatever the shell that runs pytest exports."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.agentproc import AgentDirs

KEPT = {"AUDITSHIP_REQUIRE_SERVICES"}
"""Says how the run treats missing services (tests/services.py); the rest would steer the code under test."""


def pytest_configure(config: pytest.Config) -> None:
    """Remove every other AUDITSHIP_* variable before collection: an exported AUDITSHIP_DATA_DIR or
    AUDITSHIP_ENDPOINT would send a test's agent, emitter or query elsewhere. Once, for the session:
    module-scoped fixtures set AUDITSHIP_RUNTIME_DIR and AUDITSHIP_DATA_DIR for their agents afterwards."""
    for name in [name for name in os.environ if name.startswith("AUDITSHIP_") and name not in KEPT]:
        del os.environ[name]


@pytest.fixture
def dirs(monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentDirs]:
    """Directories for an agent of the test's own, which AUDITSHIP_RUNTIME_DIR and AUDITSHIP_DATA_DIR
    name (and no AUDITSHIP_ENDPOINT) while the test runs."""
    dirs = AgentDirs()
    for key, value in dirs.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AUDITSHIP_ENDPOINT", raising=False)
    yield dirs
    dirs.cleanup()
