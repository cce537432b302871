"""Compliance presets: what SOX, HIPAA, GDPR and PCI DSS ask of an audit trail, as data.

A preset sets a retention floor (how long events must be kept: cleanup refuses to go below it; with
several, the strictest wins) and the fields an event must carry. Names are case-insensitive (the seed
writes `compliance_requirements=["SOX", "GDPR"]`); the agent's `compliance` setting accepts only these
four, while an event's `compliance` tags may hold any other label, which brings no preset.

  sox    7 years (SEC rule 2-06 of Regulation S-X, records of audits and reviews)
  hipaa  6 years (45 CFR 164.316(b)(2), documentation of the audit controls of 164.312(b))
  pci    1 year, the last 3 months immediately searchable (PCI DSS 10.5.1); every event names its user,
         type, date and time, outcome, origin and affected resource (10.2.2)
  gdpr   no floor: storage limitation (Art. 5(1)(e)) asks that personal data be kept no longer than its
         purpose needs, so set retention.days to what the purpose justifies, and erase subjects'
         personal values on request

Years are counted as 365.25 days rounded up (a year with a 29 February is 366 days).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec

from shipper.event import AuditEvent, AuditOutcome

DAYS_PER_YEAR = 365.25
_UNKNOWN = AuditOutcome.UNKNOWN


class Framework(msgspec.Struct, frozen=True):
    name: str
    floor_days: int
    """Events are kept at least this long; 0 for none."""
    searchable_days: int = 0
    """Of which this many are immediately searchable (in the lake, which audit-query reads)."""
    required: tuple[str, ...] = ()
    """The fields every event must carry (names as `missing_fields` reports them)."""
    note: str = ""


def _years(years: float) -> int:
    return math.ceil(years * DAYS_PER_YEAR)


PCI_FIELDS = ("user", "type", "time", "outcome", "origin", "resource")
"""PCI DSS 10.2.2: user identification, type of event, date and time, success or failure, origination
of the event, identity of the affected data, system component or resource."""

FRAMEWORKS = {
    framework.name: framework
    for framework in (
        Framework("sox", _years(7), note="SEC Regulation S-X 2-06: 7 years"),
        Framework("hipaa", _years(6), note="45 CFR 164.316(b)(2): 6 years"),
        Framework(
            "pci",
            _years(1),
            searchable_days=92,
            required=PCI_FIELDS,
            note="PCI DSS 10.5.1: 1 year, 3 months immediately searchable; 10.2.2: required fields",
        ),
        Framework(
            "gdpr",
            0,
            note="GDPR Art. 5(1)(b),(e): no floor; keep personal data only as long as its purpose needs",
        ),
    )
}


def frameworks(names: Iterable[str], *, strict: bool = True) -> tuple[Framework, ...]:
    """The presets named (case-insensitive), each once, in FRAMEWORKS' order. `strict`: ValueError naming
    an unknown name; otherwise unknown names (an event's free-form tags) are passed over."""
    wanted = {name.lower() for name in names}
    if strict and (unknown := sorted(wanted - FRAMEWORKS.keys())):
        raise ValueError(
            f"unknown compliance framework {unknown[0]!r}: expected some of {', '.join(FRAMEWORKS)}"
        )
    return tuple(framework for name, framework in FRAMEWORKS.items() if name in wanted)


def strictest(chosen: Iterable[Framework]) -> Framework | None:
    """The framework with the longest floor, or None when none has one."""
    floors = [framework for framework in chosen if framework.floor_days > 0]
    return max(floors, key=lambda framework: framework.floor_days) if floors else None


class RetentionFloorError(ValueError):
    """A retention shorter than a compliance framework's floor."""


def check_retention(days: float, chosen: Iterable[Framework], setting: str) -> None:
    """RetentionFloorError, naming `setting`, the framework and its floor, when `days` is below the
    strictest floor of `chosen`."""
    floor = strictest(chosen)
    if floor is not None and days < floor.floor_days:
        raise RetentionFloorError(
            f"{setting}: {days:g} days is below the retention floor of {floor.name.upper()}, "
            f"{floor.floor_days} days ({floor.note}); nothing newer than {floor.floor_days} days may be "
            "removed while it applies"
        )


def missing_fields(event: AuditEvent) -> list[str]:
    """Which of PCI DSS 10.2.2's fields `event` lacks (type and time it always has): `user` (user_id),
    `outcome` (not unknown), `origin` (source_ip or service_name), `resource` (resource_type or
    resource_id, or the endpoint an API call reached)."""
    if (
        event.user_id
        and (event.source_ip or event.service_name)
        and (event.resource_type or event.resource_id or event.endpoint)
        and event.outcome is not _UNKNOWN
    ):
        return []  # nearly every event: one pass of tests, nothing built
    missing: list[str] = []
    if not event.user_id:
        missing.append("user")
    if event.outcome is _UNKNOWN:
        missing.append("outcome")
    if not (event.source_ip or event.service_name):
        missing.append("origin")
    if not (event.resource_type or event.resource_id or event.endpoint):
        missing.append("resource")
    return missing
