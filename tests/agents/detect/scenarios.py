"""One pattern per rule, with pinned times, each under keys of its own and made so that no other rule
fires on it: what the detector tests send through an agent, write to a lake, or feed the Detector.

A Scenario's `triggering` are the events an alert must name, oldest first; `completing` is the one
whose time is the alert's. `DENIED` is the network the deny-list scenario needs listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shipper.event import AuditEvent, AuditEventType, AuditOutcome

BASE = datetime(2024, 5, 13, 9, 0, tzinfo=UTC)
"""A Monday, 09:00 UTC: every scenario's time is counted from it."""
DENIED = "192.0.2.0/24"
T = AuditEventType


@dataclass
class Scenario:
    rule: str
    key: dict[str, str]
    events: list[AuditEvent] = field(default_factory=list)
    triggering: list[AuditEvent] = field(default_factory=list)

    @property
    def completing(self) -> AuditEvent:
        return self.triggering[-1]

    def add(
        self, kind: AuditEventType, at: timedelta, *, triggers: bool = False, **fields: Any
    ) -> AuditEvent:
        event = AuditEvent(event_type=kind, timestamp=BASE + at, service_name="scenario", **fields)
        self.events.append(event)
        if triggers:
            self.triggering.append(event)
        return event


def failure(scenario: Scenario, at: timedelta, user: str, address: str, *, triggers: bool = True) -> None:
    scenario.add(
        T.AUTH_FAILURE, at, triggers=triggers, outcome=AuditOutcome.FAILURE, user_id=user, source_ip=address
    )


def brute_force_user() -> Scenario:
    """10 failures for one user within 5 minutes, from 10 addresses."""
    scenario = Scenario("brute_force_user", {"user_id": "bf-user"})
    for n in range(10):
        failure(scenario, timedelta(seconds=20 * n), "bf-user", f"10.1.0.{n}")
    return scenario


def brute_force_address() -> Scenario:
    """20 failures from one address within 5 minutes, 5 for each of 4 users."""
    scenario = Scenario("brute_force_address", {"source_ip": "10.2.0.1"})
    for n in range(20):
        failure(scenario, timedelta(seconds=10 * n), f"bfa-{n % 4}", "10.2.0.1")
    return scenario


def password_spraying() -> Scenario:
    """One address failing for 10 users within 10 minutes."""
    scenario = Scenario("password_spraying", {"source_ip": "10.3.0.1"})
    for n in range(10):
        failure(scenario, timedelta(seconds=30 * n), f"spray-{n}", "10.3.0.1")
    return scenario


def credential_stuffing() -> Scenario:
    """One address failing for 20 users, one every 40 minutes: too slow for password_spraying."""
    scenario = Scenario("credential_stuffing", {"source_ip": "10.4.0.1"})
    for n in range(20):
        failure(scenario, timedelta(minutes=40 * n), f"stuffed-{n}", "10.4.0.1")
    return scenario


def rate_limit_storm() -> Scenario:
    """50 rate-limit refusals for one address within a minute."""
    scenario = Scenario("rate_limit_storm", {"source_ip": "10.5.0.1"})
    for n in range(50):
        scenario.add(
            T.RATE_LIMIT_EXCEEDED, timedelta(seconds=n), triggers=True, source_ip="10.5.0.1", user_id="storm"
        )
    return scenario


def bulk_export() -> Scenario:
    """One export of 150,000 records by a user with no history."""
    scenario = Scenario("bulk_export", {"user_id": "bulk"})
    scenario.add(
        T.DATA_EXPORT, timedelta(minutes=5), triggers=True, user_id="bulk", details={"records": 150_000}
    )
    return scenario


def export_volume() -> Scenario:
    """100 records exported in each of 3 hours, then 5,000 in one: 50 times the user's usual."""
    scenario = Scenario("export_volume", {"user_id": "exporter"})
    for hour in range(3):
        scenario.add(T.DATA_EXPORT, timedelta(hours=hour), user_id="exporter", details={"record_count": 100})
    scenario.add(
        T.DATA_EXPORT, timedelta(hours=3), triggers=True, user_id="exporter", details={"record_count": 5000}
    )
    return scenario


def resource_sweep() -> Scenario:
    """5 documents in each of 3 hours, then 100 distinct ones in one hour."""
    scenario = Scenario("resource_sweep", {"user_id": "sweeper"})
    for hour in range(3):
        for n in range(5):
            scenario.add(
                T.DATA_READ,
                timedelta(hours=hour, minutes=n),
                user_id="sweeper",
                resource_type="doc",
                resource_id=f"usual-{n}",
            )
    for n in range(100):
        scenario.add(
            T.DATA_READ,
            timedelta(hours=3, seconds=n),
            triggers=n >= 100 - 20,
            user_id="sweeper",
            resource_type="doc",
            resource_id=f"swept-{n}",
        )
    return scenario


def off_hours_access() -> Scenario:
    """A login at 09:00 on each of 7 days, then activity at 03:00."""
    scenario = Scenario("off_hours_access", {"user_id": "nine-to-five"})
    for day in range(7):
        scenario.add(T.USER_LOGIN, timedelta(days=day), user_id="nine-to-five")
    scenario.add(T.DATA_READ, timedelta(days=7, hours=-6), triggers=True, user_id="nine-to-five")
    return scenario


def privilege_then_access() -> Scenario:
    """An administrator grants a user a role; the user reads payroll ten minutes later."""
    scenario = Scenario("privilege_then_access", {"user_id": "promoted"})
    scenario.add(
        T.CONFIGURATION_CHANGE,
        timedelta(0),
        triggers=True,
        user_id="admin",
        action="grant_role",
        resource_type="user",
        resource_id="promoted",
    )
    scenario.add(
        T.DATA_READ,
        timedelta(minutes=10),
        triggers=True,
        user_id="promoted",
        resource_type="table",
        resource_id="payroll",
    )
    return scenario


def denied_address() -> Scenario:
    """An event from an address in the listed network."""
    scenario = Scenario("denied_address", {"source_ip": "192.0.2.66"})
    scenario.add(T.API_REQUEST, timedelta(0), triggers=True, source_ip="192.0.2.66", user_id="visitor")
    return scenario


SCENARIOS = {
    scenario().rule: scenario
    for scenario in (
        brute_force_user,
        brute_force_address,
        password_spraying,
        credential_stuffing,
        rate_limit_storm,
        bulk_export,
        export_volume,
        resource_sweep,
        off_hours_access,
        privilege_then_access,
        denied_address,
    )
}
"""Rule -> a function that makes its scenario anew (fresh event ids)."""
