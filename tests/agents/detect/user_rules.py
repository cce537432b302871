"""A user's Sigma rule, and events for it, for the Sigma tests on the stream, the lake and an agent."""

from __future__ import annotations

from shipper.event import AuditEvent, AuditEventType, AuditOutcome
from tests.agents.detect.scenarios import BASE

USER_RULES = """\
title: Grants outside the admin tools
name: stray_grant
id: 2f7c1b9a-3a51-4d3b-8d0e-000000000001
logsource:
  product: auditship
detection:
  grant:
    action|startswith: grant_
    resource_type:
      - user
      - account
  tools:
    service_name|re: '^admin-'
  unnamed:
    resource_id: null
  condition: grant and not tools and not unnamed
level: high
"""


def grant(service: str, resource: str | None, at_minutes: int) -> AuditEvent:
    return AuditEvent(
        event_type=AuditEventType.CONFIGURATION_CHANGE,
        timestamp=BASE.replace(minute=at_minutes),
        action="GRANT_role",
        resource_type="user",
        resource_id=resource,
        service_name=service,
        source_ip=f"10.7.0.{at_minutes}",
        outcome=AuditOutcome.SUCCESS,
    )
