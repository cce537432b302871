"""What the families that look at a selection of events under a key share: those four, kept once."""

from __future__ import annotations

from typing import Generic, TypeVar

from auditship.agents.detect.family import Context, Family, S
from auditship.agents.detect.kinds import Key, Selection

T = TypeVar("T")


class SelectedFamily(Family[S], Generic[S, T]):
    """A family offered the events `selection` picks, each counted under `key`, with its `settings`."""

    def __init__(self, name: str, settings: T, context: Context, *, selection: Selection, key: Key) -> None:
        super().__init__(name, context)
        self.settings = settings
        self.selection = selection
        self.key = key
        self.types = selection.types
