"""Which (emitter, seq) pairs the WAL already holds, so that an event sent again is appended once.

Emitters resend their unconfirmed window after an agent restart and spill to spool files, so the same
event can arrive twice, out of order, and long after. Per emitter we keep the set of accepted seqs as
sorted, disjoint intervals: in the common case that is one interval growing at its end, O(1) per event.

The index is saved (atomically) beside the WAL together with the WAL seq it covers; on start the intake
loads it and replays the WAL records after that seq, so a restart forgets nothing, not even what
sinks have already consumed and the WAL has deleted.
"""

from __future__ import annotations

import bisect
import logging
import time
from pathlib import Path

import msgspec

from auditship.agents.durable import write_atomically

MAX_INTERVALS = 4096
log = logging.getLogger("auditship.intake")


class SeqSet:
    """A set of positive ints stored as sorted disjoint closed intervals `[start, end]`."""

    __slots__ = ("ends", "starts")

    def __init__(self, intervals: list[tuple[int, int]] | None = None) -> None:
        self.starts: list[int] = [start for start, _ in intervals or ()]
        self.ends: list[int] = [end for _, end in intervals or ()]

    def __contains__(self, seq: int) -> bool:
        index = bisect.bisect_right(self.starts, seq) - 1
        return index >= 0 and seq <= self.ends[index]

    def add(self, seq: int) -> bool:
        """Add `seq`; False when it was already there."""
        starts, ends = self.starts, self.ends
        if ends and seq == ends[-1] + 1:
            ends[-1] = seq
            return True
        index = bisect.bisect_right(starts, seq) - 1
        if index >= 0 and seq <= ends[index]:
            return False
        joins_left = index >= 0 and ends[index] == seq - 1
        joins_right = index + 1 < len(starts) and starts[index + 1] == seq + 1
        if joins_left and joins_right:
            ends[index] = ends.pop(index + 1)
            starts.pop(index + 1)
        elif joins_left:
            ends[index] = seq
        elif joins_right:
            starts[index + 1] = seq
        else:
            starts.insert(index + 1, seq)
            ends.insert(index + 1, seq)
            if len(starts) > MAX_INTERVALS:
                # Bound memory: close the oldest gap. A seq from it arriving later is taken for a repeat.
                ends[0] = ends.pop(1)
                starts.pop(1)
        return True

    def intervals(self) -> list[tuple[int, int]]:
        return list(zip(self.starts, self.ends, strict=True))


class _Saved(msgspec.Struct):
    wal_seq: int
    emitters: dict[str, tuple[float, list[tuple[int, int]]]]


class DedupeIndex:
    def __init__(self, horizon_s: float) -> None:
        self.horizon_s = horizon_s
        self._seen: dict[str, SeqSet] = {}
        self._last_heard: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def accept(self, emitter: str, seq: int, now: float) -> bool:
        """Record (emitter, seq); False when it is a repeat."""
        seqs = self._seen.get(emitter)
        if seqs is None:
            seqs = self._seen[emitter] = SeqSet()
        self._last_heard[emitter] = now
        return seqs.add(seq)

    def forget_idle(self, now: float) -> int:
        """Drop emitters not heard from within the horizon; returns how many."""
        idle = [emitter for emitter, heard in self._last_heard.items() if now - heard > self.horizon_s]
        for emitter in idle:
            del self._seen[emitter], self._last_heard[emitter]
        return len(idle)

    def save(self, path: Path, wal_seq: int) -> None:
        saved = _Saved(
            wal_seq,
            {e: (self._last_heard[e], seqs.intervals()) for e, seqs in self._seen.items()},
        )
        write_atomically(path, msgspec.msgpack.encode(saved))

    @classmethod
    def load(cls, path: Path, horizon_s: float) -> tuple[DedupeIndex, int]:
        """The saved index and the WAL seq it covers; an empty index covering 0 when there is none."""
        index = cls(horizon_s)
        try:
            saved = msgspec.msgpack.decode(path.read_bytes(), type=_Saved)
        except FileNotFoundError:
            return index, 0
        except (OSError, msgspec.DecodeError) as exc:
            # Not a reason to refuse to start: the whole WAL is replayed instead, and only repeats of
            # events already consumed and deleted from it could slip through.
            log.warning("%s: unreadable (%s); rebuilding the dedupe index from the whole WAL", path, exc)
            return index, 0
        for emitter, (heard, intervals) in saved.emitters.items():
            index._seen[emitter] = SeqSet([tuple(i) for i in intervals])  # type: ignore[misc]
            index._last_heard[emitter] = heard
        index.forget_idle(time.time())
        return index, saved.wal_seq
