"""Which events a search wants, as one typed object shared by the CLI and the Python API, compiled into a
SQL condition with parameters (never values pasted into SQL) and into the partitions it can need.

Every filter given must hold. Times: `start` inclusive, `end` exclusive. `min_severity` keeps that
severity and those above it (info < low < medium < high < critical). `text` is a case-insensitive
substring of the message or the action. `blind` holds (field, blind index) pairs: the events whose envelope
of that sensitive field carries the index (ondisk/blind.py), found without decrypting anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from auditship.ondisk.blind import BlindIndex
from auditship.ondisk.errors import KeyringError
from auditship.query.errors import QueryError
from auditship.query.lake import Prune
from shipper.event import AuditEventType, AuditOutcome, AuditSeverity

E = TypeVar("E", bound=StrEnum)


class EventFilter(msgspec.Struct, frozen=True, kw_only=True):
    event_types: tuple[AuditEventType, ...] = ()
    user_id: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    source_ip: str | None = None
    service: str | None = None
    outcomes: tuple[AuditOutcome, ...] = ()
    min_severity: AuditSeverity | None = None
    start: datetime | None = None
    end: datetime | None = None
    text: str | None = None
    blind: tuple[tuple[str, str], ...] = ()

    def where(self) -> tuple[str, list[Any]]:
        """A condition over `events` and its parameters ("true" when nothing is filtered)."""
        clauses: list[str] = []
        params: list[Any] = []

        def add(clause: str, *values: Any) -> None:
            clauses.append(clause)
            params.extend(values)

        if self.start is not None:
            add("timestamp >= ?", self.start)
        if self.end is not None:
            add("timestamp < ?", self.end)
        for column, value in (
            ("user_id", self.user_id),
            ("resource_type", self.resource_type),
            ("resource_id", self.resource_id),
            ("source_ip", self.source_ip),
            ("service_name", self.service),
        ):
            if value is not None:
                add(f"{column} = ?", value)
        severities = (
            [s.value for s in AuditSeverity if s.rank >= self.min_severity.rank] if self.min_severity else []
        )
        for column, values in (
            ("event_type", [t.value for t in self.event_types]),
            ("outcome", [o.value for o in self.outcomes]),
            ("severity", severities),
        ):
            if values:
                add(f"{column} IN ({', '.join('?' * len(values))})", *values)
        if self.text:
            needle = self.text.lower()
            add("(contains(lower(message), ?) OR contains(lower(action), ?))", needle, needle)
        for name, token in self.blind:
            # A JSON pointer names any key (a plain key starting with $ or / would be read as a path).
            pointer = "/" + name.replace("~", "~0").replace("/", "~1")
            add("ends_with(json_extract_string(sensitive, ?), ?)", pointer, f":{token}")
        return " AND ".join(clauses) or "true", params

    def prune(self) -> Prune:
        return Prune(start=self.start, end=self.end, service=self.service)


def blind_indexes(keys_dir: Path | None, values: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    """The (field, blind index) pairs of `values` (sensitive field -> value), with the key in `keys_dir`;
    QueryError when there is none there."""
    if not values:
        return ()
    if keys_dir is None:
        raise QueryError("a search by sensitive value needs the agent's keys_dir (--keys-dir, --config)")
    try:
        index = BlindIndex.load(keys_dir)
    except KeyringError as exc:
        raise QueryError(f"cannot search by sensitive value: {exc}") from exc
    return tuple((name, index.token(name, value)) for name, value in values.items())


def enum_values(enum: type[E], values: Iterable[str | E], name: str) -> tuple[E, ...]:
    """`values` as members of `enum`, by value or name in any case; a QueryError names `name` otherwise."""
    members = []
    for value in values:
        text = str(value).strip().lower()
        try:
            members.append(enum(text))
        except ValueError:
            choices = ", ".join(member.value for member in enum)
            raise QueryError(f"{name}: unknown value {str(value)!r}; one of {choices}") from None
    return tuple(members)


def resource(text: str) -> tuple[str, str | None]:
    """--resource TYPE[:ID] as (type, id or None)."""
    kind, _, ident = text.partition(":")
    if not kind or (":" in text and not ident):
        raise QueryError(f"--resource: {text!r} is not TYPE or TYPE:ID (such as document or document:42)")
    return kind, ident or None
