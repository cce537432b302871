"""A Sigma detection's condition (pySigma's parsed tree) as a Selection: a test on the decoded event and
the same condition as SQL over the lake, every value a named parameter.

Supported, on the fields the detector reads (observed.Observed but `details`): equality (Sigma compares
strings case-insensitively), wildcards (`*`, `?`, and so `|contains`, `|startswith`, `|endswith`), `|re`
(a search, as Sigma's), `null`, lists (any of them), and `and`, `or`, `not`, `1 of`, `all of`. Anything
else (a keyword without a field, `|cidr`, a field the detector does not read) is a SigmaCompileError
naming it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
)
from sigma.types import SigmaNull, SigmaNumber, SigmaRegularExpression, SigmaString, SpecialChars

from auditship.agents.detect.kinds import Selection
from auditship.agents.detect.observed import Observed

FIELDS = (
    "event_type",
    "event_id",
    "outcome",
    "action",
    "user_id",
    "source_ip",
    "resource_type",
    "resource_id",
    "service_name",
)
"""What a Sigma rule may test: the event's fields that the detector decodes."""
Test = Callable[[Observed], bool]


class SigmaCompileError(ValueError):
    """A rule the detector cannot run; `needle` is text of the rule that shows where (for the line)."""

    def __init__(self, reason: str, needle: str | None = None) -> None:
        super().__init__(reason)
        self.needle = needle


class _Compiler:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.params: dict[str, Any] = {}

    def param(self, value: object) -> str:
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return f"${name}"

    def compile(self, node: ConditionItem | ConditionFieldEqualsValueExpression) -> tuple[Test, str]:
        if isinstance(node, ConditionAND | ConditionOR):
            parts = [self.compile(arg) for arg in node.args]  # type: ignore[arg-type]
            tests = [test for test, _ in parts]
            joiner = " AND " if isinstance(node, ConditionAND) else " OR "
            sql = "(" + joiner.join(sql for _, sql in parts) + ")"
            if isinstance(node, ConditionAND):
                return (lambda event: all(test(event) for test in tests)), sql
            return (lambda event: any(test(event) for test in tests)), sql
        if isinstance(node, ConditionNOT):
            test, sql = self.compile(node.args[0])  # type: ignore[arg-type]
            return (lambda event: not test(event)), f"(NOT coalesce({sql}, false))"
        if isinstance(node, ConditionFieldEqualsValueExpression):
            return self.field(node.field, node.value)
        raise SigmaCompileError(
            f"{type(node).__name__}: a value without a field (a keyword search) is not supported; "
            f"name one of the fields {', '.join(FIELDS)}"
        )

    def field(self, field: str, value: object) -> tuple[Test, str]:
        if field not in FIELDS:
            raise SigmaCompileError(
                f"field {field!r} is not one the detector reads ({', '.join(FIELDS)})", needle=field
            )
        read = _reader(field)
        if isinstance(value, SigmaNull):
            return (lambda event: read(event) is None), f"({field} IS NULL)"
        if isinstance(value, SigmaRegularExpression):
            pattern = value.regexp.to_plain()
            compiled = re.compile(pattern)
            return (
                lambda event: (text := read(event)) is not None and compiled.search(text) is not None,
                f"coalesce(regexp_matches({field}, {self.param(pattern)}), false)",
            )
        if isinstance(value, SigmaNumber):
            value = SigmaString(str(value.number))
        if not isinstance(value, SigmaString):
            raise SigmaCompileError(
                f"field {field!r}: a {type(value).__name__} value is not supported", needle=field
            )
        if not value.contains_special():
            plain = value.to_plain().lower()
            return (
                lambda event: (text := read(event)) is not None and text.lower() == plain,
                f"coalesce(lower({field}) = {self.param(plain)}, false)",
            )
        pattern = _wildcards(value)
        compiled = re.compile(pattern, re.IGNORECASE | re.DOTALL)
        return (
            lambda event: (text := read(event)) is not None and compiled.fullmatch(text) is not None,
            f"coalesce(regexp_full_match({field}, {self.param(pattern)}, 'is'), false)",
        )


def _reader(field: str) -> Callable[[Observed], str | None]:
    return lambda event: getattr(event, field)


def _wildcards(value: SigmaString) -> str:
    """A Sigma string with wildcards as a regular expression that Python and DuckDB (RE2) read alike."""
    parts = []
    for part in value.s:
        if part is SpecialChars.WILDCARD_MULTI:
            parts.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            parts.append(".")
        elif isinstance(part, str):
            parts.append(re.escape(part))
        else:
            raise SigmaCompileError(f"a placeholder ({part}) is not supported")
    return "".join(parts)


def event_types(node: object) -> frozenset[str] | None:
    """The event types a condition can hold for (None: it does not say), so that the detector offers a
    rule only the events it can take."""
    if isinstance(node, ConditionFieldEqualsValueExpression):
        value = node.value
        if node.field == "event_type" and isinstance(value, SigmaString) and not value.contains_special():
            return frozenset({value.to_plain().lower()})
        return None
    if isinstance(node, ConditionAND):
        known = [types for arg in node.args if (types := event_types(arg)) is not None]
        return frozenset.intersection(*known) if known else None
    if isinstance(node, ConditionOR):
        each = [event_types(arg) for arg in node.args]
        return None if any(types is None for types in each) else frozenset().union(*each)  # type: ignore[arg-type]
    return None


def selection(conditions: list[object], prefix: str) -> Selection:
    """Any of `conditions` (the rules a correlation names) as one Selection, its parameters named
    `prefix` and a number."""
    compiler = _Compiler(prefix)
    parts = [compiler.compile(condition) for condition in conditions]  # type: ignore[arg-type]
    tests = [test for test, _ in parts]
    each = [event_types(condition) for condition in conditions]
    types = None if any(t is None for t in each) else frozenset().union(*each)  # type: ignore[arg-type]
    test: Test = tests[0] if len(tests) == 1 else (lambda event: any(test(event) for test in tests))
    sql = "(" + " OR ".join(sql for _, sql in parts) + ")"
    return Selection(types, test, sql, compiler.params)
