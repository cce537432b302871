"""A labelled synthetic month for `python -m bench detect`: normal traffic of 5,000 users on 50
services, and injected incidents, each labelled with the rules that should find it and under which key.

Normal users work a band of 8 UTC hours on weekdays (90% of them), 1-3 events an hour (logins, reads and
updates of their own documents and a few shared ones, API calls, access checks), now and then an hour
late, an export of 20-300 records on 30% of days, a mistyped password on 1% of days, a rate-limit
refusal on 0.5% of hours. Bots fail to log in from random addresses, 1-3 users each, 50 a day. An
administrator grants a role about every other day, and the user then works as usual: a legitimate
privilege change followed by access, which privilege_then_access cannot tell from an escalation (its
precision shows it).

Incidents, `per_kind` of each, on days 10-28 (after every baseline has a week and more): a brute force
(25 failures for one user from one address in 2 minutes), password spraying (30 users in 6 minutes),
a slow credential-stuffing run (40 users, one every 20 minutes), an off-hours session (a user at 02:00,
4 hours or more from their band), a bulk export (250,000 records), an unusual export (5,000 records by a
user whose exports are a few hundred), a resource sweep (300 shared documents in 40 minutes), a
privilege escalation followed by access (a role granted, payroll read 5 minutes later), a rate-limit
storm (120 refusals in 2 minutes) and activity from a listed address.

Generated a day at a time, in time order, from one seed: the same month every run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shipper.event import AuditEvent, AuditEventType, AuditOutcome

T = AuditEventType
START = datetime(2024, 4, 1, tzinfo=UTC)
"""A Monday."""
DAYS = 30
SERVICES = 50
LISTED = "192.0.2.0/24"


@dataclass
class Incident:
    kind: str
    start: datetime
    end: datetime
    expected: dict[str, dict[str, str]]
    """rule -> the key its alert names."""


@dataclass
class User:
    number: int
    band: int
    """The first UTC hour of the 8 they work."""
    services: list[str]
    exports: list[int] = field(default_factory=list)
    """Days they exported on (an export incident needs a user with a history of exports)."""
    worked: list[int] = field(default_factory=list)
    """Days they worked (an off-hours incident needs a user with a week of them)."""

    @property
    def name(self) -> str:
        return f"user-{self.number:04d}"

    @property
    def address(self) -> str:
        return f"10.{self.number // 250}.{self.number % 250}.10"


class Month:
    def __init__(self, users: int = 5000, per_kind: int = 5, seed: int = 15) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.users = [
            User(n, rng.choice(range(6, 14)), rng.sample([f"svc-{s:02d}" for s in range(SERVICES)], 3))
            for n in range(users)
        ]
        self.per_kind = per_kind
        self.incidents: list[Incident] = []
        self._planned = self._plan()

    def days(self) -> Iterator[list[AuditEvent]]:
        """Each day's events, in time order."""
        for day in range(DAYS):
            events = self._normal_day(day)
            for make in self._planned.get(day, []):
                events.extend(make())
            events.sort(key=lambda event: event.timestamp)
            yield events

    def _event(self, kind: AuditEventType, at: datetime, user: User | None, **fields: object) -> AuditEvent:
        if user is not None:
            fields.setdefault("user_id", user.name)
            fields.setdefault("source_ip", user.address)
            fields.setdefault("service_name", self.rng.choice(user.services))
        return AuditEvent(event_type=kind, timestamp=at, **fields)

    def _normal_day(self, day: int) -> list[AuditEvent]:
        rng, date = self.rng, START + timedelta(days=day)
        events: list[AuditEvent] = []
        if date.weekday() < 5:
            for user in self.users:
                if rng.random() < 0.9:
                    events.extend(self._workday(user, day, date))
        for _ in range(50):  # bots
            address = f"203.0.100.{rng.randrange(256)}"
            at = date + timedelta(seconds=rng.randrange(86400))
            for n in range(rng.randint(1, 3)):
                target = rng.choice(self.users)
                events.append(
                    self._event(
                        T.AUTH_FAILURE,
                        at + timedelta(seconds=n),
                        None,
                        outcome=AuditOutcome.FAILURE,
                        user_id=target.name,
                        source_ip=address,
                        service_name="svc-00",
                    )
                )
        if rng.random() < 0.6:  # a legitimate role grant, then the user works as usual
            admin, user = self.users[0], rng.choice(self.users)
            at = date + timedelta(hours=max(admin.band, user.band) + 1, minutes=rng.randrange(30))
            events.append(
                self._event(
                    T.CONFIGURATION_CHANGE,
                    at,
                    admin,
                    action="grant_role",
                    resource_type="user",
                    resource_id=user.name,
                )
            )
        return events

    def _workday(self, user: User, day: int, date: datetime) -> list[AuditEvent]:
        rng = self.rng
        hours = list(range(user.band, user.band + 8 + (rng.random() < 0.05)))
        start = date + timedelta(hours=user.band, minutes=rng.randrange(10))
        events = [self._event(T.USER_LOGIN, start, user)]
        user.worked.append(day)
        if rng.random() < 0.01:
            events.append(
                self._event(T.AUTH_FAILURE, start - timedelta(seconds=20), user, outcome=AuditOutcome.FAILURE)
            )
        for hour in hours:
            for _ in range(rng.randint(1, 3)):
                at = date + timedelta(hours=hour, seconds=rng.randrange(3600))
                pick = rng.random()
                if pick < 0.45:
                    events.append(self._event(T.DATA_READ, at, user, **self._resource(user)))
                elif pick < 0.6:
                    events.append(self._event(T.DATA_UPDATE, at, user, **self._resource(user)))
                elif pick < 0.85:
                    events.append(self._event(T.API_REQUEST, at, user, method="GET", status_code=200))
                else:
                    events.append(self._event(T.ACCESS_GRANTED, at, user, **self._resource(user)))
            if rng.random() < 0.005:
                at = date + timedelta(hours=hour, seconds=rng.randrange(3600))
                events.append(self._event(T.RATE_LIMIT_EXCEEDED, at, user, status_code=429))
        if rng.random() < 0.3:
            at = date + timedelta(hours=rng.choice(hours), seconds=rng.randrange(3600))
            records = rng.randint(20, 300)
            events.append(self._event(T.DATA_EXPORT, at, user, details={"record_count": records}))
            user.exports.append(day)
        return events

    def _resource(self, user: User) -> dict[str, str]:
        if self.rng.random() < 0.1:
            return {"resource_type": "shared", "resource_id": f"shared-{self.rng.randrange(2000)}"}
        return {"resource_type": "doc", "resource_id": f"doc-{user.number}-{self.rng.randrange(20)}"}

    def _plan(self) -> dict[int, list[Callable[[], list[AuditEvent]]]]:
        """Each incident's day and maker; a maker runs on its day, when the history it needs is known,
        returns the incident's events and records it."""
        kinds = [
            self._brute_force,
            self._spraying,
            self._stuffing,
            self._off_hours,
            self._bulk_export,
            self._unusual_export,
            self._sweep,
            self._escalation,
            self._storm,
            self._listed,
        ]
        planned: dict[int, list[Callable[[], list[AuditEvent]]]] = {}
        for index, make in enumerate(kinds):
            for n in range(self.per_kind):
                day = 10 + (index * self.per_kind + n) * 7 % 19
                planned.setdefault(day, []).append(lambda make=make, n=n, day=day: make(n, day))
        return planned

    def _any_time(self, day: int) -> datetime:
        return START + timedelta(days=day, seconds=self.rng.randrange(80000))

    def _in_band(self, user: User, day: int) -> datetime:
        """A time within the user's working hours: the incident is not an off-hours one as well."""
        return START + timedelta(days=day, hours=user.band + 1, seconds=self.rng.randrange(5 * 3600))

    def _record(
        self, kind: str, events: list[AuditEvent], expected: dict[str, dict[str, str]]
    ) -> list[AuditEvent]:
        times = [event.timestamp for event in events]
        self.incidents.append(Incident(kind, min(times), max(times), expected))
        return events

    def _failures(self, address: str, users: list[str], every: timedelta, at: datetime) -> list[AuditEvent]:
        return [
            self._event(
                T.AUTH_FAILURE,
                at + every * n,
                None,
                outcome=AuditOutcome.FAILURE,
                user_id=user,
                source_ip=address,
                service_name="svc-01",
            )
            for n, user in enumerate(users)
        ]

    def _brute_force(self, n: int, day: int) -> list[AuditEvent]:
        address, victim = f"203.0.113.{n}", self.rng.choice(self.users).name
        events = self._failures(address, [victim] * 25, timedelta(seconds=5), self._any_time(day))
        expected = {"brute_force_user": {"user_id": victim}, "brute_force_address": {"source_ip": address}}
        return self._record("brute force", events, expected)

    def _spraying(self, n: int, day: int) -> list[AuditEvent]:
        address = f"203.0.114.{n}"
        users = [user.name for user in self.rng.sample(self.users, 30)]
        events = self._failures(address, users, timedelta(seconds=12), self._any_time(day))
        key = {"source_ip": address}
        expected = {"password_spraying": key, "brute_force_address": key, "credential_stuffing": key}
        return self._record("password spraying", events, expected)

    def _stuffing(self, n: int, day: int) -> list[AuditEvent]:
        address = f"203.0.115.{n}"
        users = [user.name for user in self.rng.sample(self.users, 40)]
        start = START + timedelta(days=day, seconds=self.rng.randrange(36000))
        events = self._failures(address, users, timedelta(minutes=20), start)
        return self._record("credential stuffing", events, {"credential_stuffing": {"source_ip": address}})

    def _off_hours(self, n: int, day: int) -> list[AuditEvent]:
        user = self.rng.choice([user for user in self.users[1:] if len(user.worked) >= 8])
        night = START + timedelta(days=day, hours=2)
        events = [
            self._event(
                T.DATA_READ,
                night + timedelta(minutes=7 * k),
                user,
                resource_type="doc",
                resource_id=f"doc-{user.number}-{k}",
            )
            for k in range(5)
        ]
        return self._record("off-hours session", events, {"off_hours_access": {"user_id": user.name}})

    def _exporter(self, day: int) -> User:
        return self.rng.choice(
            [user for user in self.users[1:] if len([d for d in user.exports if d < day]) >= 3]
        )

    def _bulk_export(self, n: int, day: int) -> list[AuditEvent]:
        user = self._exporter(day)
        event = self._event(T.DATA_EXPORT, self._in_band(user, day), user, details={"record_count": 250_000})
        key = {"user_id": user.name}
        return self._record("bulk export", [event], {"bulk_export": key, "export_volume": key})

    def _unusual_export(self, n: int, day: int) -> list[AuditEvent]:
        user = self._exporter(day)
        event = self._event(T.DATA_EXPORT, self._in_band(user, day), user, details={"record_count": 5000})
        return self._record("unusual export", [event], {"export_volume": {"user_id": user.name}})

    def _sweep(self, n: int, day: int) -> list[AuditEvent]:
        user = self.rng.choice(self.users[1:])
        at = self._in_band(user, day)
        events = [
            self._event(
                T.DATA_READ,
                at + timedelta(seconds=8 * k),
                user,
                resource_type="shared",
                resource_id=f"shared-{k}",
            )
            for k in range(300)
        ]
        return self._record("resource sweep", events, {"resource_sweep": {"user_id": user.name}})

    def _escalation(self, n: int, day: int) -> list[AuditEvent]:
        admin, user = self.users[0], self.rng.choice(self.users[1:])
        at = START + timedelta(days=day, hours=max(admin.band, user.band) + 1, minutes=self.rng.randrange(60))
        grant = self._event(
            T.CONFIGURATION_CHANGE,
            at,
            admin,
            action="grant_role",
            resource_type="user",
            resource_id=user.name,
        )
        read = self._event(
            T.DATA_READ, at + timedelta(minutes=5), user, resource_type="table", resource_id="payroll"
        )
        expected = {"privilege_then_access": {"user_id": user.name}}
        return self._record("privilege escalation", [grant, read], expected)

    def _storm(self, n: int, day: int) -> list[AuditEvent]:
        address, at = f"198.51.100.{n}", self._any_time(day)
        events = [
            self._event(
                T.RATE_LIMIT_EXCEEDED,
                at + timedelta(seconds=k),
                None,
                source_ip=address,
                service_name="svc-02",
                status_code=429,
            )
            for k in range(120)
        ]
        return self._record("rate-limit storm", events, {"rate_limit_storm": {"source_ip": address}})

    def _listed(self, n: int, day: int) -> list[AuditEvent]:
        address, at = f"192.0.2.{10 + n}", self._any_time(day)
        events = [
            self._event(
                T.API_REQUEST,
                at + timedelta(seconds=k),
                None,
                source_ip=address,
                service_name="svc-03",
                method="GET",
                status_code=200,
            )
            for k in range(3)
        ]
        return self._record("listed address", events, {"denied_address": {"source_ip": address}})
