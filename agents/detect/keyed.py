"""`Keyed`: a rule's state per key, at most `capacity` keys, the least recently used forgotten first.

This is what bounds the detector's memory whatever the number of users and addresses it meets: every
rule holds one of these, and each key's state is bounded by the rule's own settings (a threshold, a
window's distinct values, a history of windows). A forgotten key loses its partial window and its
baseline: an attacker who sprays a million addresses costs the detector memory for `capacity` of them
and pushes out the quiet keys, which is counted (`evicted`) so that it shows. An exact LRU rather than a
count-min sketch: alerts name the events they count, which a sketch cannot keep.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

S = TypeVar("S")


class Keyed(Generic[S]):
    __slots__ = ("_states", "capacity", "evicted")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.evicted = 0
        self._states: OrderedDict[str, S] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, key: str) -> S | None:
        """The key's state, now the most recently used; None when it has none."""
        state = self._states.get(key)
        if state is not None:
            self._states.move_to_end(key)
        return state

    def peek(self, key: str) -> S | None:
        """The key's state, leaving the order as it is."""
        return self._states.get(key)

    def put(self, key: str, state: S) -> None:
        """Keep `state` as the key's, the most recently used; the least recently used key goes when this
        one is new and the table is full."""
        states = self._states
        if key in states:
            states.move_to_end(key)
        elif len(states) >= self.capacity:
            states.popitem(last=False)
            self.evicted += 1
        states[key] = state

    def pop(self, key: str) -> None:
        self._states.pop(key, None)

    def items(self) -> Iterator[tuple[str, S]]:
        """Least recently used first: what `load` takes back in the same order."""
        return iter(self._states.items())

    def load(self, items: Iterable[tuple[str, S]]) -> None:
        """Take saved states back (least recently used first), within the capacity."""
        for key, state in items:
            self.put(key, state)
