"""A privilege change followed by access: a user's privileges change (a role granted, a permission
added), then within `window_s` that user reads, exports, changes or deletes data.

A privilege change is an event that did not fail whose action is one of `actions`, or a
configuration_change of a resource whose type is one of `resource_types` (both compared in lower
case); its subject is kinds.privilege_subject. Per subject the latest change (time, id, whether it
has alerted): the first access after it alerts, naming both events.
"""

from __future__ import annotations

import msgspec

from auditship.agents.detect.families.sliding import PositiveSeconds
from auditship.agents.detect.family import Context, Family, RuleSettings
from auditship.agents.detect.finding import Finding, moment
from auditship.agents.detect.kinds import (
    ACCESS_TYPES,
    DATA_ACCESS,
    PRIVILEGE_SUBJECT_SQL,
    USER,
    Selection,
    privilege_subject,
)
from auditship.agents.detect.lake_sql import Lake, Span, findings, source
from auditship.agents.detect.observed import Observed


class SequenceSettings(RuleSettings):
    window_s: PositiveSeconds = 3600.0
    actions: list[str] = msgspec.field(
        default_factory=lambda: [
            "grant_role",
            "assign_role",
            "add_role",
            "grant_privilege",
            "grant_permission",
            "elevate_privileges",
            "add_to_group",
            "make_admin",
        ]
    )
    resource_types: list[str] = msgspec.field(default_factory=lambda: ["role", "privilege", "permission"])


class ChangeState(msgspec.Struct, array_like=True, gc=False):
    ts: float
    event_id: str
    alerted: bool = False


class SequenceFamily(Family[ChangeState]):
    state_type = ChangeState

    def __init__(self, name: str, settings: SequenceSettings, context: Context) -> None:
        super().__init__(name, context)
        self.settings = settings
        self.actions = frozenset(action.lower() for action in settings.actions)
        self.resource_types = frozenset(kind.lower() for kind in settings.resource_types)
        self.changes = Selection(None, self._is_change, self._change_sql())

    def _is_change(self, event: Observed) -> bool:
        action = event.action
        if action is None and event.event_type != "configuration_change":
            return False  # most events: answered without more tests
        if event.outcome in ("failure", "error"):
            return False
        if action is not None and action.lower() in self.actions:
            return True
        return (
            event.event_type == "configuration_change"
            and event.resource_type is not None
            and event.resource_type.lower() in self.resource_types
        )

    @staticmethod
    def _change_sql() -> str:
        # coalesce: a NULL action or resource type is no change (and NOT of it must still be true).
        return (
            "(outcome NOT IN ('failure', 'error')"
            " AND (coalesce(list_contains($actions, lower(action)), false)"
            " OR (event_type = 'configuration_change'"
            " AND coalesce(list_contains($resource_types, lower(resource_type)), false))))"
        )

    def observe(self, event: Observed, ts: float, lsn: int) -> Finding | None:
        if self._is_change(event):
            if (subject := privilege_subject(event)) is not None:
                self.table.put(subject, ChangeState(ts, event.event_id))
            return None
        if event.event_type not in ACCESS_TYPES or (user := event.user_id) is None:
            return None
        change = self.table.peek(user)
        if change is None or change.alerted or not DATA_ACCESS.test(event):
            return None
        if not change.ts < ts <= change.ts + self.settings.window_s:
            return None
        change.alerted = True
        return Finding(
            rule=self.name,
            key=USER.describe(user),
            window_s=self.settings.window_s,
            window_start=moment(change.ts),
            window_end=moment(ts),
            count=1.0,
            threshold=1.0,
            event_ids=[change.event_id, event.event_id],
            lsn=lsn,
        )

    @property
    def lookback_s(self) -> float:
        return self.settings.window_s

    def findings(self, lake: Lake, span: Span) -> list[Finding]:
        sql = f"""
            WITH changes AS ({source(self.changes.sql, f"{PRIVILEGE_SUBJECT_SQL} AS k")}),
            accesses AS ({source(f"{DATA_ACCESS.sql} AND NOT {self.changes.sql}", "user_id AS k")}),
            paired AS (
                SELECT a.k, a.ts, c.ts AS change_ts, c.event_id AS change_id, a.event_id
                FROM accesses a JOIN changes c ON a.k = c.k AND a.ts > c.ts AND a.ts <= c.ts + $window
                QUALIFY row_number() OVER (PARTITION BY a.event_id ORDER BY c.ts DESC) = 1
            ),
            firsts AS (
                SELECT * FROM paired QUALIFY row_number() OVER (PARTITION BY change_id ORDER BY ts) = 1
            )
            SELECT k, ts, change_ts, 1, 1, NULL, [change_id, event_id] FROM firsts WHERE ts >= $since
            ORDER BY k, ts
        """  # noqa: S608 - only fixed SQL text and placeholders are formatted in
        params = {
            **span.params(self.lookback_s),
            "window": self.settings.window_s,
            "actions": sorted(self.actions),
            "resource_types": sorted(self.resource_types),
        }
        rows = lake(sql, params)
        # One alert per change is the query's own: no cooldown on top.
        return findings(
            self.name,
            rows,
            describe=USER.describe,
            window_s=self.settings.window_s,
            cooldown_s=0.0,
            max_ids=2,
        )
