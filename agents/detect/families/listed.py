"""Activity from a listed address: any event whose source address is on the deny list (denylist.py).
One alert per address, then it is quiet for `cooldown_s`.

Per address: when it last alerted (only listed addresses have state).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from auditship.agents.detect.denylist import DenyList, DenyListError
from auditship.agents.detect.families.sliding import PositiveSeconds
from auditship.agents.detect.family import Context, Family, RuleSettings
from auditship.agents.detect.finding import Finding, due, moment
from auditship.agents.detect.kinds import ADDRESS
from auditship.agents.detect.lake_sql import Lake, Span, findings, source
from auditship.agents.detect.observed import Observed


class ListedSettings(RuleSettings):
    deny_list: str = ""
    """An absolute path; empty: no list, and the rule finds nothing."""
    cooldown_s: PositiveSeconds = 3600.0

    def check(self, key: str) -> None:
        if not self.deny_list:
            return
        path = Path(self.deny_list)
        if not path.is_absolute():
            raise ValueError(f"{key}.deny_list: must be an absolute path, got {self.deny_list!r}")
        try:
            DenyList(path)
        except DenyListError as exc:
            raise ValueError(f"{key}.deny_list: {exc}") from exc


class ListedState(msgspec.Struct, array_like=True, gc=False):
    alerted: float


class ListedFamily(Family[ListedState]):
    state_type = ListedState

    def __init__(self, name: str, settings: ListedSettings, context: Context) -> None:
        super().__init__(name, context)
        self.settings = settings
        self.deny_list = DenyList(Path(settings.deny_list) if settings.deny_list else None)
        if not settings.deny_list:
            self.types = frozenset()  # no list to look in: offered no event

    def observe(self, event: Observed, ts: float, lsn: int) -> Finding | None:
        address = event.source_ip
        if address is None or not self.deny_list.listed(address):
            return None
        state = self.table.get(address)
        if state is not None and not due(state.alerted, ts, self.settings.cooldown_s):
            return None
        self.table.put(address, ListedState(ts))
        return Finding(
            rule=self.name,
            key=ADDRESS.describe(address),
            window_s=self.settings.cooldown_s,
            window_start=moment(ts),
            window_end=moment(ts),
            count=1.0,
            threshold=1.0,
            event_ids=[event.event_id],
            lsn=lsn,
        )

    def refresh(self) -> None:
        self.deny_list.refresh()

    @property
    def lookback_s(self) -> float:
        return 0.0

    def findings(self, lake: Lake, span: Span) -> list[Finding]:
        if not len(self.deny_list):
            return []
        params = span.params(self.lookback_s)
        distinct = f"SELECT DISTINCT k FROM ({source('source_ip IS NOT NULL', 'source_ip AS k')})"  # noqa: S608
        addresses = lake(distinct, params)
        listed = [address for (address,) in addresses if self.deny_list.listed(address)]
        if not listed:
            return []
        sql = f"""
            SELECT k, ts, ts, 1, 1, NULL, [event_id]
            FROM ({source("list_contains($listed, source_ip)", "source_ip AS k")})
            WHERE ts >= $since ORDER BY k, ts
        """  # noqa: S608 - only fixed SQL text and placeholders are formatted in
        rows = lake(sql, {**params, "listed": listed})
        cooldown = self.settings.cooldown_s
        return findings(
            self.name,
            rows,
            describe=ADDRESS.describe,
            window_s=cooldown,
            cooldown_s=cooldown,
            max_ids=self.context.max_ids,
        )
