"""Compliance presets at the intake: an event lacking a field PCI DSS 10.2.2 requires is stored all the
same, flagged (`details.compliance_missing`) and counted; which events are checked."""

from __future__ import annotations

import pytest

from auditship.agents.intake.required_fields import RequiredFields
from shipper.compliance import frameworks, missing_fields
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType, AuditOutcome
from tests.agentproc import QUICK_CONFIG, agent_running, file_events
from tests.waiting import wait_for

COMPLETE = {
    "user_id": "alice",
    "outcome": AuditOutcome.FAILURE,
    "source_ip": "10.0.0.1",
    "resource_type": "card",
    "resource_id": "4111",
}


def test_the_fields_pci_requires_and_how_each_may_be_given() -> None:
    """user: user_id; outcome: not unknown; origin: an address or a service; resource: a type, an id, or
    the endpoint an API call reached. Type and time an event always has."""
    assert missing_fields(AuditEvent(event_type=AuditEventType.DATA_READ, **COMPLETE)) == []
    bare = AuditEvent(event_type=AuditEventType.HEARTBEAT, outcome=AuditOutcome.UNKNOWN)
    assert missing_fields(bare) == ["user", "outcome", "origin", "resource"]
    api = AuditEvent(
        event_type=AuditEventType.API_REQUEST, user_id="u", service_name="api", endpoint="/cards/{id}"
    )
    assert missing_fields(api) == []


def test_which_events_are_checked() -> None:
    """Every event when the agent's compliance names pci; otherwise those whose own tags name it (any
    case); tags of presets without required fields, or unknown tags, check nothing."""
    bare = AuditEvent(event_type=AuditEventType.HEARTBEAT)
    assert RequiredFields(frameworks(["pci"])).missing(bare) == ["user", "origin", "resource"]
    unchecked = RequiredFields(frameworks(["sox", "gdpr"]))
    assert unchecked.missing(bare) is None
    assert (
        unchecked.missing(AuditEvent(event_type=AuditEventType.HEARTBEAT, compliance=["SOX", "ISO27001"]))
        is None
    )
    tagged = AuditEvent(event_type=AuditEventType.HEARTBEAT, compliance=["PCI"])
    assert unchecked.missing(tagged) == ["user", "origin", "resource"]


@pytest.mark.slow
def test_an_agent_with_pci_stores_and_flags_an_incomplete_event_and_counts_it() -> None:
    """Both events are delivered; only the incomplete one carries details.compliance_missing (its own
    details kept beside it), and the intake's compliance_flagged counts it."""
    config = (
        'compliance = ["pci"]\n[retention]\ndays = 366\n'
        + QUICK_CONFIG
        + "[sinks.parquet]\nenabled = false\n"
    )
    with agent_running(config) as agent:
        emitter = Emitter()
        try:
            emitter.emit(AuditEvent(event_type=AuditEventType.DATA_READ, service_name="pay", **COMPLETE))
            emitter.emit(AuditEvent(event_type=AuditEventType.DATA_EXPORT, details={"rows": 5}))
            assert emitter.flush(10)
        finally:
            emitter.close(0)
        wait_for(lambda: len(file_events(agent.dirs.data)) == 2, 20, "both events in the file sink")
        complete, incomplete = file_events(agent.dirs.data)
        assert "compliance_missing" not in complete.get("details", {})
        assert incomplete["details"] == {"rows": 5, "compliance_missing": ["user", "origin", "resource"]}
        wait_for(lambda: agent.counters("intake").get("compliance_flagged") == 1, 10, "the flag counted")
