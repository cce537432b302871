"""Which events the intake flags for lacking a field a compliance preset requires (PCI DSS 10.2.2).

An event is checked when the agent's `compliance` names a preset with required fields, or when the
event's own `compliance` tags do (a service's `AuditContext.compliance_requirements`, case-insensitive).
A flagged event is stored all the same, with `details.compliance_missing` listing what it lacks, and
counted (`compliance_flagged`): refusing it would lose the trail of what did happen.

The intake is hot: with no preset configured and no tags on the event, the whole cost is two tests;
the presets a set of tags brings are looked up once per distinct set.
"""

from __future__ import annotations

import functools

from shipper.compliance import Framework, frameworks, missing_fields
from shipper.event import AuditEvent

FLAG_KEY = "compliance_missing"
"""The key of `details` that lists the fields a flagged event lacks."""


class RequiredFields:
    def __init__(self, configured: tuple[Framework, ...]) -> None:
        self._always = any(framework.required for framework in configured)

    def missing(self, event: AuditEvent) -> list[str] | None:
        """The required fields `event` lacks, or None when it lacks none or none are required of it."""
        if not (self._always or (event.compliance and _tags_require(tuple(event.compliance)))):
            return None
        return missing_fields(event) or None


@functools.lru_cache(maxsize=256)
def _tags_require(tags: tuple[str, ...]) -> bool:
    return any(framework.required for framework in frameworks(tags, strict=False))
