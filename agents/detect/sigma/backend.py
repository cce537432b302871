"""The auditship backend for Sigma: rule files compiled into detector rules (rules.Rule), or a
SigmaCompileError naming the file, the line and the reason.

- A correlation of type `event_count` becomes a sliding count (families/count.py), `value_count` a
  sliding distinct count of its condition's `field` (families/distinct.py): `group-by` names the one
  field the rule counts under, `timespan` the window, `condition` `gte` (or `gt`) the threshold. The
  rules it names, ORed, select the events. Other types (temporal, value_sum...) are not supported.
- A detection rule that no correlation names alerts at its first match for an address (else user,
  else service), which is then quiet for PLAIN_COOLDOWN_S.
- `level` is the alert's severity (informational: info; none: medium), `critical` making it a
  SECURITY_VIOLATION as for built-in rules. `name` (else `sigma-<id>`) is the rule's name in alerts and
  for `--rule`; a rule named as a built-in replaces it, which the built-in's section must turn off.

The rules are read when the agent (or audit-query) starts; `logsource` is not checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from glob import glob
from operator import attrgetter
from pathlib import Path
from typing import Any

from auditship.agents.detect import kinds
from auditship.agents.detect.alert import RULE_SLOTS
from auditship.agents.detect.families.count import CountFamily
from auditship.agents.detect.families.distinct import DistinctFamily
from auditship.agents.detect.families.sliding import SlidingSettings
from auditship.agents.detect.family import Context, Family
from auditship.agents.detect.rules import BY_NAME, RULES, Rule
from auditship.agents.detect.sigma.conditions import FIELDS, SigmaCompileError, selection
from shipper.event import AuditSeverity

PLAIN_COOLDOWN_S = 3600.0
LEVELS = {
    "informational": AuditSeverity.INFO,
    "low": AuditSeverity.LOW,
    "medium": AuditSeverity.MEDIUM,
    "high": AuditSeverity.HIGH,
    "critical": AuditSeverity.CRITICAL,
}
RULE_NAME = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,99}")


def compile_files(patterns: Iterable[str]) -> list[Rule]:
    """The rules of the files `patterns` name (paths or globs, sorted), in that order."""
    try:
        from sigma.collection import SigmaCollection
        from sigma.exceptions import SigmaError
    except ImportError as exc:
        raise SigmaCompileError(f"Sigma rules need pySigma: pip install 'auditship[sigma]' ({exc})") from None
    rules: list[Rule] = []
    for pattern in patterns:
        paths = sorted(glob(pattern))  # noqa: PTH207 - a pattern from the config, absolute or not
        if not paths:
            raise SigmaCompileError(f"{pattern}: no file matches")
        for path in map(Path, paths):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SigmaCompileError(f"{path}: cannot read: {exc}") from exc
            try:
                collection = SigmaCollection.from_yaml(text, collect_errors=True)
                collection.resolve_rule_references()
            except SigmaError as exc:
                raise SigmaCompileError(f"{path}:{_line(text, None, str(exc))}: {exc}") from None
            rules.extend(_compile(path, text, list(collection), len(rules)))
    return rules


def _compile(path: Path, text: str, items: list[Any], before: int) -> list[Rule]:
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaConditionError, SigmaError

    compiled: list[Rule] = []
    correlations = [item for item in items if isinstance(item, SigmaCorrelationRule)]
    named = {id(reference.rule) for item in correlations for reference in item.rules or ()}
    for item in items:
        anchor = str(item.id) if item.id else item.title
        try:
            if item.errors:
                raise item.errors[0]
            if isinstance(item, SigmaCorrelationRule):
                compiled.append(_correlation(item, before + len(compiled)))
            elif id(item) not in named:
                compiled.append(_plain(item, before + len(compiled)))
        except SigmaCompileError as exc:
            raise SigmaCompileError(f"{path}:{_line(text, anchor, exc.needle)}: {exc}") from None
        except SigmaConditionError as exc:
            raise SigmaCompileError(f"{path}:{_line(text, anchor, 'condition:')}: condition: {exc}") from None
        except SigmaError as exc:
            raise SigmaCompileError(f"{path}:{_line(text, anchor, None)}: {exc}") from None
    return compiled


def _correlation(item: Any, position: int) -> Rule:
    from sigma.correlations import SigmaCorrelationConditionOperator, SigmaCorrelationType

    kind = item.type
    if kind not in (SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT):
        raise SigmaCompileError(
            f"correlation type {kind.name.lower()} is not supported (event_count, value_count)", "type:"
        )
    if len(item.group_by or ()) != 1 or item.group_by[0] not in FIELDS:
        raise SigmaCompileError(
            f"group-by must name one field of {', '.join(FIELDS)}, got {item.group_by}", "group-by"
        )
    operator, count = item.condition.op, item.condition.count
    if operator is SigmaCorrelationConditionOperator.GTE:
        threshold = count
    elif operator is SigmaCorrelationConditionOperator.GT:
        threshold = count + 1
    else:
        raise SigmaCompileError(f"condition {operator.name.lower()} is not supported (gte, gt)", "condition")
    field = item.group_by[0]
    settings = SlidingSettings(threshold=threshold, window_s=float(item.timespan.seconds))
    chosen = selection([_condition(reference.rule) for reference in item.rules], "s")
    key = kinds.Key(attrgetter(field), field, lambda value: {field: value})
    if kind is SigmaCorrelationType.EVENT_COUNT:

        def build(name: str, _settings: Any, context: Context) -> Family[Any]:
            return CountFamily(name, settings, context, selection=chosen, key=key)

    else:
        counted = item.condition.fieldref
        if counted not in FIELDS:
            raise SigmaCompileError(
                f"condition field must be one of {', '.join(FIELDS)}, got {counted!r}", "field"
            )

        def build(name: str, _settings: Any, context: Context) -> Family[Any]:
            value = (attrgetter(counted), counted)
            return DistinctFamily(name, settings, context, selection=chosen, key=key, value=value)

    return _rule(item, build, position)


def _plain(item: Any, position: int) -> Rule:
    settings = SlidingSettings(threshold=1, window_s=PLAIN_COOLDOWN_S)
    chosen = selection([_condition(item)], "s")

    def build(name: str, _settings: Any, context: Context) -> Family[Any]:
        return CountFamily(name, settings, context, selection=chosen, key=kinds.ACTOR)

    return _rule(item, build, position)


def _condition(rule: Any) -> object:
    """A detection rule's conditions, ORed when it has several."""
    from sigma.conditions import ConditionOR

    trees = [condition.parse() for condition in rule.detection.parsed_condition]
    return trees[0] if len(trees) == 1 else ConditionOR(trees)


def _rule(item: Any, build: Any, position: int) -> Rule:
    name = item.name or f"sigma-{item.id}"
    if not RULE_NAME.fullmatch(name):
        raise SigmaCompileError(f"name {name!r}: use lower-case letters, digits, '_', '-', '.', ':'", "name")
    builtin = BY_NAME.get(name)
    slot = builtin.slot if builtin is not None else len(RULES) + position
    if slot >= RULE_SLOTS:
        raise SigmaCompileError(f"more than {RULE_SLOTS - len(RULES)} Sigma rules besides the built-in ones")
    level = item.level.name.lower() if item.level is not None else "medium"
    return Rule(name, LEVELS[level], item.title or name, type(None), build, slot)  # type: ignore[arg-type]


def _line(text: str, anchor: str | None, needle: str | None) -> int:
    """The line (1-based) where `needle` first appears in the rule whose id or title is `anchor` (its
    YAML document), else where that rule starts, else 1."""
    lines = text.splitlines()
    start = 0
    if anchor is not None:
        start = next((n for n, line in enumerate(lines) if anchor in line), 0)
        while start > 0 and lines[start - 1].strip() != "---":
            start -= 1
    end = next((n for n in range(start + 1, len(lines)) if lines[n].strip() == "---"), len(lines))
    if needle is not None:
        for number in range(start, end):
            if needle in lines[number]:
                return number + 1
    return start + 1
