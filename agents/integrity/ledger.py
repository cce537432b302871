"""A sink's ledger of WAL seqs: how far it has written, and which seqs it skipped on the way.

Every event a sink writes carries its WAL seq, and a sink writes in WAL order, so what it wrote is a run
of seqs whose holes are exactly the records it had no event for: LSNs the WAL skipped after a crash,
records that did not decode, events refused to dead letters. The ledger finds those holes as the sink
writes (one comparison per batch when there is none, the usual case) and hands them to the next digest,
so that verify can tell a declared hole from a deleted line or row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, overload


class HasLsn(Protocol):
    @property
    def lsn(self) -> int: ...


class Lsns(Sequence[int]):
    """The WAL seqs of a batch's entries, read where needed: the ledger's usual check reads two of them,
    so building a list of every seq would be the only per-event work of a digest."""

    def __init__(self, entries: Sequence[HasLsn]) -> None:
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[int]: ...
    def __getitem__(self, index: int | slice) -> int | Sequence[int]:
        if isinstance(index, slice):
            return [entry.lsn for entry in self._entries[index]]
        return self._entries[index].lsn


class SeqLedger:
    def __init__(self, seq_through: int) -> None:
        self.seq_through = seq_through
        """The highest seq written (or declared a hole); seqs at or below it are repeats."""
        self._gaps: list[tuple[int, int]] = []
        self._digested_through = seq_through

    def wrote(self, seqs: Sequence[int]) -> bool:
        """Note seqs written, ascending; True when they opened a hole (the caller digests it at once)."""
        if not seqs:
            return False
        if seqs[0] == self.seq_through + 1 and seqs[-1] - seqs[0] == len(seqs) - 1:
            self.seq_through = seqs[-1]
            return False
        holes = len(self._gaps)
        for seq in seqs:
            if seq <= self.seq_through:
                continue  # written before: a batch offered again after a crash
            if seq > self.seq_through + 1:
                self._gaps.append((self.seq_through + 1, seq - 1))
            self.seq_through = seq
        return len(self._gaps) > holes

    @property
    def changed(self) -> bool:
        """Whether anything was written since the last `digested()`."""
        return self.seq_through != self._digested_through or bool(self._gaps)

    def pending_gaps(self) -> list[tuple[int, int]]:
        return list(self._gaps)

    def digested(self, gaps: int, seq_through: int) -> None:
        """The first `gaps` holes and the seqs through `seq_through` are in a digest now."""
        del self._gaps[:gaps]
        self._digested_through = seq_through
