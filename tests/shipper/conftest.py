"""For tests that assert events at a real agent: one agent per test module (`audit_agent`), an emitter
sending to it, a service of its own for each test, and `delivered_events(n)` to wait for that service's
events in the agent's file."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import msgspec
import pytest

from shipper.config import AuditContext
from shipper.emitter import Emitter
from shipper.event import AuditEvent
from tests.agentproc import QUICK_CONFIG, RunningAgent, agent_running, file_events
from tests.waiting import wait_for

# Sensitive values stay encrypted in the file: tests check that request bodies never reach it in clear.
AGENT_CONFIG = QUICK_CONFIG


@pytest.fixture(scope="module")
def audit_agent() -> Iterator[RunningAgent]:
    with agent_running(AGENT_CONFIG) as running:
        yield running


@pytest.fixture(scope="module")
def agent_emitter(audit_agent: RunningAgent) -> Iterator[Emitter]:
    emitter = Emitter(audit_agent.config.intake_endpoint)
    yield emitter
    emitter.close()


@pytest.fixture
def service_context() -> AuditContext:
    """A service of its own for each test, so that a test finds its events among the module's."""
    return AuditContext(service_name=f"svc-{uuid.uuid4().hex[:8]}", environment="test", node_id="node-1")


@pytest.fixture
def delivered_events(
    audit_agent: RunningAgent, agent_emitter: Emitter, service_context: AuditContext
) -> Callable[[int], list[AuditEvent]]:
    """delivered_events(n): the test service's events in the agent's file, once there are n of them, in
    order, decoded as AuditEvents (the file leaves out fields at their defaults)."""

    def wait(count: int) -> list[AuditEvent]:
        assert agent_emitter.flush(10), agent_emitter.stats

        def mine() -> list[dict[str, object]]:
            name = service_context.service_name
            return [e for e in file_events(audit_agent.dirs.data) if e.get("service_name") == name]

        wait_for(lambda: len(mine()) >= count, 20, f"{count} events of {service_context.service_name}")
        return [msgspec.convert(event, AuditEvent) for event in mine()]

    return wait
