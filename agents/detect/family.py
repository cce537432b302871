"""What every rule is built from: a family (how it counts: events in a sliding window, distinct values,
a measure per window against the key's own history, hours, a sequence, a list) applied to a selection of
events under a key. A family holds its streaming state (a `Keyed` table) and writes its lake query,
so that the two sides of a rule live in one file.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

import msgspec

from auditship.agents.detect.finding import Finding
from auditship.agents.detect.keyed import Keyed
from auditship.agents.detect.lake_sql import Lake, Span
from auditship.agents.detect.observed import Observed
from auditship.agents.section import Section

S = TypeVar("S")


class RuleSettings(Section):
    """A rule's section, `[detect.<rule>]`: each rule's subclass (rules.py) gives its own defaults."""

    enabled: bool = True


class Context(NamedTuple):
    """What every rule shares, from `[detect]`."""

    capacity: int
    """Keys each rule keeps state for (Keyed)."""
    max_ids: int
    """Event ids an alert names, at most."""
    baseline_days: float
    """How far back the lake is read for a rule's baseline."""


class Family(Generic[S]):
    """One rule's streaming side (`observe`) and lake side (`findings`)."""

    state_type: ClassVar[type]
    """The Struct of one key's state, as saved (a snapshot holds it per key)."""
    types: frozenset[str] | None = None
    """The event types `observe` wants; None: every event."""

    def __init__(self, name: str, context: Context) -> None:
        self.name = name
        self.context = context
        self.table: Keyed[S] = Keyed(context.capacity)

    def observe(self, event: Observed, ts: float, lsn: int) -> Finding | None:
        """Take one event (its time `ts` in epoch seconds); a Finding when it completes the pattern."""
        raise NotImplementedError

    def findings(self, lake: Lake, span: Span) -> list[Finding]:
        """The rule over the lake: what it would have alerted on in `span`."""
        raise NotImplementedError

    @property
    def lookback_s(self) -> float:
        """How long before a span the lake query reads, for the windows that end in it."""
        raise NotImplementedError

    def refresh(self) -> None:
        """Read again what the rule reads from outside the WAL, if anything (a deny list)."""

    def dump(self) -> bytes:
        return msgspec.msgpack.encode(list(self.table.items()))

    def load(self, data: bytes) -> None:
        """Take back what `dump` wrote; msgspec.ValidationError when it is another state's."""
        decoder: msgspec.msgpack.Decoder[list[tuple[str, Any]]] = msgspec.msgpack.Decoder(
            list[tuple[str, self.state_type]]  # type: ignore[name-defined]
        )
        self.table.load(decoder.decode(data))
