"""Every rule, in one place: its name, severity, what it finds, its settings' defaults, and how it is
built (a family applied to a selection of events under a key). The streaming detector and
`audit-query anomalies` both build their rules from this table and the `[detect]` config, so a
threshold is the same for both.

A rule of severity CRITICAL raises a SECURITY_VIOLATION, any other a SUSPICIOUS_ACTIVITY.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from auditship.agents.detect import kinds
from auditship.agents.detect.families.count import CountFamily
from auditship.agents.detect.families.distinct import DistinctFamily
from auditship.agents.detect.families.hours import HoursFamily, HoursSettings
from auditship.agents.detect.families.listed import ListedFamily, ListedSettings
from auditship.agents.detect.families.sequence import SequenceFamily, SequenceSettings
from auditship.agents.detect.families.sliding import PositiveSeconds, SlidingSettings
from auditship.agents.detect.families.windowed import (
    Measure,
    NonNegative,
    WindowedFamily,
    WindowedSettings,
)
from auditship.agents.detect.family import Context, Family, RuleSettings
from auditship.agents.section import Positive
from shipper.event import AuditEventType, AuditSeverity

S = AuditSeverity


class BruteForceUser(SlidingSettings):
    threshold: Positive = 10
    window_s: PositiveSeconds = 300.0


class BruteForceAddress(SlidingSettings):
    threshold: Positive = 20
    window_s: PositiveSeconds = 300.0


class PasswordSpraying(SlidingSettings):
    threshold: Positive = 10
    window_s: PositiveSeconds = 600.0


class CredentialStuffing(SlidingSettings):
    threshold: Positive = 20
    window_s: PositiveSeconds = 86400.0


class RateLimitStorm(SlidingSettings):
    threshold: Positive = 50
    window_s: PositiveSeconds = 60.0


class BulkExport(WindowedSettings):
    limit: NonNegative = 100_000.0
    factor: NonNegative = 0.0


class ExportVolume(WindowedSettings):
    factor: NonNegative = 10.0
    minimum: NonNegative = 1000.0


class ResourceSweep(WindowedSettings):
    factor: NonNegative = 10.0
    minimum: NonNegative = 100.0


class OffHoursAccess(HoursSettings):
    pass


class PrivilegeThenAccess(SequenceSettings):
    pass


class DeniedAddress(ListedSettings):
    pass


class Rule(NamedTuple):
    name: str
    severity: AuditSeverity
    summary: str
    settings: type[RuleSettings]
    build: Callable[[str, Any, Context], Family[Any]]
    """(name, its settings, the shared context) -> the rule's family."""
    slot: int = 0
    """Its place among the rules, which numbers its alerts' frames (alert.py): fixed for a built-in rule."""

    @property
    def event_type(self) -> AuditEventType:
        """What its alerts are."""
        if self.severity is S.CRITICAL:
            return AuditEventType.SECURITY_VIOLATION
        return AuditEventType.SUSPICIOUS_ACTIVITY


USERS_FAILED = (lambda event: event.user_id, "user_id")
RESOURCES = Measure("distinct", kinds.resource_of, kinds.RESOURCE_SQL)
RECORDS = Measure("sum", kinds.export_volume, kinds.EXPORT_VOLUME_SQL)

_RULES = (
    Rule(
        "brute_force_user",
        S.HIGH,
        "authentication failures for one user",
        BruteForceUser,
        lambda n, s, c: CountFamily(n, s, c, selection=kinds.AUTH_FAILURES, key=kinds.USER),
    ),
    Rule(
        "brute_force_address",
        S.HIGH,
        "authentication failures from one address",
        BruteForceAddress,
        lambda n, s, c: CountFamily(n, s, c, selection=kinds.AUTH_FAILURES, key=kinds.ADDRESS),
    ),
    Rule(
        "password_spraying",
        S.CRITICAL,
        "one address failing to authenticate as many users, quickly",
        PasswordSpraying,
        lambda n, s, c: DistinctFamily(
            n, s, c, selection=kinds.AUTH_FAILURES, key=kinds.ADDRESS, value=USERS_FAILED
        ),
    ),
    Rule(
        "credential_stuffing",
        S.HIGH,
        "one address failing to authenticate as many users over a day (slow stuffing)",
        CredentialStuffing,
        lambda n, s, c: DistinctFamily(
            n, s, c, selection=kinds.AUTH_FAILURES, key=kinds.ADDRESS, value=USERS_FAILED
        ),
    ),
    Rule(
        "rate_limit_storm",
        S.MEDIUM,
        "rate-limit refusals for one address (else user, else service)",
        RateLimitStorm,
        lambda n, s, c: CountFamily(n, s, c, selection=kinds.RATE_LIMITS, key=kinds.ACTOR),
    ),
    Rule(
        "bulk_export",
        S.CRITICAL,
        "records exported by one user in a window, past an absolute limit",
        BulkExport,
        lambda n, s, c: WindowedFamily(n, s, c, selection=kinds.EXPORTS, key=kinds.USER, measure=RECORDS),
    ),
    Rule(
        "export_volume",
        S.HIGH,
        "records exported by one user in a window, far above that user's usual",
        ExportVolume,
        lambda n, s, c: WindowedFamily(n, s, c, selection=kinds.EXPORTS, key=kinds.USER, measure=RECORDS),
    ),
    Rule(
        "resource_sweep",
        S.MEDIUM,
        "distinct resources one user touches in a window, far above that user's usual",
        ResourceSweep,
        lambda n, s, c: WindowedFamily(
            n, s, c, selection=kinds.RESOURCE_TOUCHES, key=kinds.USER, measure=RESOURCES
        ),
    ),
    Rule(
        "off_hours_access",
        S.MEDIUM,
        "a user active at an hour of the day (UTC) they have not worked at lately",
        OffHoursAccess,
        lambda n, s, c: HoursFamily(n, s, c, selection=kinds.ACTIVITY, key=kinds.USER),
    ),
    Rule(
        "privilege_then_access",
        S.HIGH,
        "a privilege change for a user, then that user accessing data",
        PrivilegeThenAccess,
        SequenceFamily,
    ),
    Rule(
        "denied_address",
        S.CRITICAL,
        "any event from an address on the deny list",
        DeniedAddress,
        ListedFamily,
    ),
)
RULES = tuple(rule._replace(slot=slot) for slot, rule in enumerate(_RULES))
BY_NAME = {rule.name: rule for rule in RULES}
