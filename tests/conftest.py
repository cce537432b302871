"""Every test starts from the same environment, whatever the shell that runs pytest exports."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.agentproc import AgentDirs

KEPT = {"AUDITSHIP_REQUIRE_SERVICES"}
"""Says how the run treats missing services (tests/services.py); the rest would steer the code under test."""
NO_INSTALL_MARKS = {"AUDITSHIP_INSTALL_MARKS": ""}
"""Tests run as on a host with no agent installed, whatever this one has (/run/auditship, the unit...):
shipper.endpoint.agent_installed() is then false here and in every process a test starts. A test of an
installed host names its own marks."""


def pytest_configure(config: pytest.Config) -> None:
    """Remove every other AUDITSHIP_* variable before collection: an exported AUDITSHIP_DATA_DIR or
    AUDITSHIP_ENDPOINT would send a test's agent, emitter or query elsewhere. Once, for the session:
    module-scoped fixtures set AUDITSHIP_RUNTIME_DIR and AUDITSHIP_DATA_DIR for their agents afterwards.
    Then point the install marks at nothing, before any fixture starts an agent (NO_INSTALL_MARKS)."""
    for name in [name for name in os.environ if name.startswith("AUDITSHIP_") and name not in KEPT]:
        del os.environ[name]
    os.environ.update(NO_INSTALL_MARKS)


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
