"""`[detect]`: whether the detector runs, its bounds, and one section per rule (rules.py), e.g.

    [detect]
    max_keys = 10000
    [detect.brute_force_user]
    threshold = 5
    [detect.denied_address]
    deny_list = "/etc/auditship/deny.txt"

A rule's section takes only the keys of its family, each checked as every section of agent.toml is.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any

import msgspec

from auditship.agents.detect import rules
from auditship.agents.detect.family import Context, Family, RuleSettings
from auditship.agents.section import Positive, Section


class DetectConfig(Section):
    enabled: bool = True
    max_keys: Positive = 10_000
    """Keys (users, addresses) each rule keeps state for; the least recently seen go first."""
    max_event_ids: Positive = 20
    """Event ids an alert names, at most."""
    baseline_days: Positive = 30
    """How far back `audit-query anomalies` reads for a rule's baseline (its windows' history)."""
    snapshot_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """How often the detector saves its state and moves its WAL cursor; a restart replays at most this
    much of the WAL."""
    batch_size: Positive = 4096
    """WAL records read at once."""
    sigma_rules: list[str] = msgspec.field(default_factory=list)
    """Sigma rule files (paths or globs) run beside the built-in rules (sigma/backend.py); each is read
    and compiled when the config is loaded, a rule that does not compile being an error naming its file
    and line."""
    brute_force_user: rules.BruteForceUser = msgspec.field(default_factory=rules.BruteForceUser)
    brute_force_address: rules.BruteForceAddress = msgspec.field(default_factory=rules.BruteForceAddress)
    password_spraying: rules.PasswordSpraying = msgspec.field(default_factory=rules.PasswordSpraying)
    credential_stuffing: rules.CredentialStuffing = msgspec.field(default_factory=rules.CredentialStuffing)
    rate_limit_storm: rules.RateLimitStorm = msgspec.field(default_factory=rules.RateLimitStorm)
    bulk_export: rules.BulkExport = msgspec.field(default_factory=rules.BulkExport)
    export_volume: rules.ExportVolume = msgspec.field(default_factory=rules.ExportVolume)
    resource_sweep: rules.ResourceSweep = msgspec.field(default_factory=rules.ResourceSweep)
    off_hours_access: rules.OffHoursAccess = msgspec.field(default_factory=rules.OffHoursAccess)
    privilege_then_access: rules.PrivilegeThenAccess = msgspec.field(
        default_factory=rules.PrivilegeThenAccess
    )
    denied_address: rules.DeniedAddress = msgspec.field(default_factory=rules.DeniedAddress)

    def check(self, key: str) -> None:
        for rule in rules.RULES:
            self.settings(rule.name).check(f"{key}.{rule.name}")
        try:
            self._table()
        except ValueError as exc:
            raise ValueError(f"{key}.sigma_rules: {exc}") from exc

    def settings(self, name: str) -> RuleSettings:
        found: RuleSettings = getattr(self, name)
        return found

    def context(self) -> Context:
        return Context(self.max_keys, self.max_event_ids, float(self.baseline_days))

    def build(self, only: Collection[str] = ()) -> list[tuple[rules.Rule, Family[Any]]]:
        """The enabled rules, or those named in `only` (enabled or not: the lake answers for a rule before
        it is turned on), each with its family; ValueError for a name that is no rule."""
        table = self._table()
        unknown = sorted(set(only) - set(table))
        if unknown:
            raise ValueError(f"no rule {unknown[0]!r}; the rules are {', '.join(table)}")
        context = self.context()
        return [
            (rule, rule.build(rule.name, settings, context))
            for rule, settings, enabled in table.values()
            if (rule.name in only if only else enabled)
        ]

    def _table(self) -> dict[str, tuple[rules.Rule, RuleSettings | None, bool]]:
        """Every rule by name, with its settings (None for a Sigma rule: it holds its own) and whether it
        is enabled: the built-in ones, then the Sigma rules (always enabled), each of which may replace a
        built-in rule turned off."""
        table: dict[str, tuple[rules.Rule, RuleSettings | None, bool]] = {}
        for rule in rules.RULES:
            settings = self.settings(rule.name)
            table[rule.name] = (rule, settings, settings.enabled)
        if not self.sigma_rules:
            return table
        from auditship.agents.detect.sigma.backend import compile_files  # pySigma only when asked for

        for rule in compile_files(self.sigma_rules):
            replaced = table.get(rule.name)
            if replaced is not None and replaced[2]:
                raise ValueError(
                    f"Sigma rule {rule.name!r} is also a built-in rule; to replace it, turn the built-in "
                    f"one off ([detect.{rule.name}] enabled = false)"
                )
            table[rule.name] = (rule, None, True)
        return table
