"""Which (sender, emitter, seq) the WAL already holds, so that an event sent again is appended once.

Emitters resend their unconfirmed window after an agent restart and spill to spool files, so the same
event can arrive twice, out of order, and long after. Per key we keep the set of accepted seqs as
sorted, disjoint intervals: in the common case that is one interval growing at its end, O(1) per event.

The key is the sender's uid (from the kernel: see senders.py) and the emitter id, not the id alone.
Emitter ids are no secret (confirmations are published under them), so a key of the id alone let any
local user send frames under a victim's id and make the victim's next events count as repeats. Under
the uid, another user's frames land in a set of their own. Over TCP with CURVE the client key's name
stands for the uid (a str, so it never meets a uid); over plain TCP it is None: one key per id, shared
by every peer.

A set never takes a gap for filled: past MAX_INTERVALS intervals it forgets its lowest interval, so a
resend from there is appended again (a duplicate, which the file sink and readers can recognise by its
event id) rather than dropped. Dropping it would be a loss, and would let anyone who reaches the key
close gaps with frames far ahead.

Saved beside the WAL, incrementally: a snapshot (`emitters.index`, written atomically) and a journal
(`emitters.index.journal`) of CRC'd records, one per save, holding only the keys that changed since the
last one and the WAL seq covered. The journal is folded into a new snapshot once it is larger than the
snapshot (at least JOURNAL_MIN_BYTES), so a save costs what changed, and the whole index is written
about as often as it is appended in full. A start loads the snapshot, applies the journal of the same
generation, then replays the WAL records after the seq they cover, so a restart forgets nothing, not
even what sinks have already consumed and the WAL has deleted. A key not heard from within the horizon
(`intake.dedupe_horizon_s`) is forgotten; a resend of one of its events after that is a duplicate.

The format before sender keys (a map of emitter id to intervals) still loads: its entries are kept
under the id alone, and the first key to use that id after the upgrade takes them over, so the resends
of an upgrade are still recognised.
"""

from __future__ import annotations

import bisect
import logging
import os
import time
from pathlib import Path

import msgspec

from auditship.agents.durable import write_atomically
from auditship.agents.intake.senders import Principal
from shipper.records import encode_record, scan_records

MAX_INTERVALS = 4096
JOURNAL_MIN_BYTES = 1024 * 1024
LEGACY = -1
"""The uid of the entries an index of the older format held (no uid is negative)."""
log = logging.getLogger("auditship.intake")

Key = tuple[Principal, str]
"""(the sender's uid, its CURVE key's name, or None without an identity; the emitter id)."""
# What a snapshot or journal record holds per key: uid, emitter, when last heard, the intervals.
_Entry = tuple[Principal, str, float, list[tuple[int, int]]]


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
                # Bound memory by forgetting the lowest interval, never by filling a gap: a repeat
                # from it is appended twice, while a filled gap would drop events never received.
                del starts[0], ends[0]
        return True

    def discard(self, seq: int) -> None:
        """Remove `seq` if it is there (splitting its interval)."""
        starts, ends = self.starts, self.ends
        index = bisect.bisect_right(starts, seq) - 1
        if index < 0 or seq > ends[index]:
            return
        start, end = starts[index], ends[index]
        if start == end:
            del starts[index], ends[index]
        elif seq == start:
            starts[index] = seq + 1
        elif seq == end:
            ends[index] = seq - 1
        else:
            ends[index] = seq - 1
            starts.insert(index + 1, seq + 1)
            ends.insert(index + 1, end)

    def intervals(self) -> list[tuple[int, int]]:
        return list(zip(self.starts, self.ends, strict=True))


class _Snapshot(msgspec.Struct):
    wal_seq: int
    generation: int = 0
    senders: list[_Entry] = msgspec.field(default_factory=list)
    emitters: dict[str, tuple[float, list[tuple[int, int]]]] = msgspec.field(default_factory=dict)
    """The older format's entries, keyed by emitter id alone."""


class _Delta(msgspec.Struct, array_like=True):
    """A journal record: what changed since the previous one, and the WAL seq the index now covers.
    The first record of a journal holds no change, only its generation (as wal_seq -1)."""

    wal_seq: int
    changed: list[_Entry]
    forgotten: list[Key]
    generation: int = 0


class DedupeIndex:
    def __init__(self, horizon_s: float) -> None:
        self.horizon_s = horizon_s
        self._seen: dict[Key, SeqSet] = {}
        self._last_heard: dict[Key, float] = {}
        self._changed: set[Key] = set()
        self._forgotten: set[Key] = set()
        self._generation = 0
        self._saved_seq = -1
        self._snapshot_bytes = 0
        self._journal_bytes = -1
        """-1: no journal of this generation on disk yet, so the next save writes a snapshot."""
        self.legacy_loaded = False
        """The snapshot was of the older format: WAL records without a sender are its emitters'."""

    def __len__(self) -> int:
        return len(self._seen)

    def accept(self, key: Key, seq: int, now: float) -> bool:
        """Record (key, seq); False when it is a repeat."""
        seqs = self._seen.get(key)
        if seqs is None:
            seqs = self._seen[key] = self._adopt(key)
        self._last_heard[key] = now
        self._changed.add(key)
        return seqs.add(seq)

    def withdraw(self, key: Key, seq: int) -> None:
        """Forget (key, seq) again: it was accepted, and then not appended (the WAL write failed). An
        index saved meanwhile must not hold it, or its resend would be dropped as a repeat of nothing."""
        seqs = self._seen.get(key)
        if seqs is not None:
            seqs.discard(seq)
            self._changed.add(key)

    def _adopt(self, key: Key) -> SeqSet:
        """A new key's set: the older format's set for its emitter id when there is one (taken over once,
        by the first key to use that id), else an empty one."""
        legacy = (LEGACY, key[1])
        seqs = self._seen.pop(legacy, None)
        if seqs is None:
            return SeqSet()
        del self._last_heard[legacy]
        self._forgotten.add(legacy)
        self._changed.discard(legacy)
        return seqs

    def forget_idle(self, now: float) -> int:
        """Drop keys not heard from within the horizon; returns how many."""
        idle = [key for key, heard in self._last_heard.items() if now - heard > self.horizon_s]
        for key in idle:
            del self._seen[key], self._last_heard[key]
            self._changed.discard(key)
            self._forgotten.add(key)
        return len(idle)

    def save(self, path: Path, wal_seq: int) -> None:
        """Make the index durable as covering the WAL up to `wal_seq`: a journal record of what changed,
        or a new snapshot when the journal has grown past it. Nothing when nothing changed."""
        if not self._changed and not self._forgotten and wal_seq == self._saved_seq:
            return
        if self._journal_bytes < 0 or self._journal_bytes > max(JOURNAL_MIN_BYTES, self._snapshot_bytes):
            self._write_snapshot(path, wal_seq)
        else:
            delta = _Delta(wal_seq, [self._entry(k) for k in self._changed], list(self._forgotten))
            self._append_journal(_journal(path), msgspec.msgpack.encode(delta))
        self._changed.clear()
        self._forgotten.clear()
        self._saved_seq = wal_seq

    def _entry(self, key: Key) -> _Entry:
        return (key[0], key[1], self._last_heard[key], self._seen[key].intervals())

    def _write_snapshot(self, path: Path, wal_seq: int) -> None:
        """A new generation: the snapshot first (atomically), then an empty journal of its generation.
        A crash between the two leaves the older journal, whose generation no longer matches: ignored."""
        generation = self._generation + 1
        data = msgspec.msgpack.encode(_Snapshot(wal_seq, generation, [self._entry(k) for k in self._seen]))
        write_atomically(path, data)
        header = encode_record(msgspec.msgpack.encode(_Delta(-1, [], [], generation)))
        write_atomically(_journal(path), header)
        self._generation = generation
        self._snapshot_bytes = len(data)
        self._journal_bytes = len(header)

    def _append_journal(self, path: Path, payload: bytes) -> None:
        record = encode_record(payload)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.write(fd, record)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._journal_bytes += len(record)

    @classmethod
    def load(cls, path: Path, horizon_s: float) -> tuple[DedupeIndex, int]:
        """The saved index and the WAL seq it covers; an empty index covering 0 when there is none."""
        index = cls(horizon_s)
        try:
            data = path.read_bytes()
            snapshot = msgspec.msgpack.decode(data, type=_Snapshot)
        except FileNotFoundError:
            return index, 0
        except (OSError, msgspec.DecodeError) as exc:
            # Not a reason to refuse to start: the whole WAL is replayed instead, and only repeats of
            # events already consumed and deleted from it could slip through.
            log.warning("%s: unreadable (%s); rebuilding the dedupe index from the whole WAL", path, exc)
            return index, 0
        index._generation = snapshot.generation
        index._snapshot_bytes = len(data)
        for uid, emitter, heard, intervals in snapshot.senders:
            index._restore((uid, emitter), heard, intervals)
        for emitter, (heard, intervals) in snapshot.emitters.items():
            index._restore((LEGACY, emitter), heard, intervals)
        index.legacy_loaded = bool(snapshot.emitters)
        covered = max(snapshot.wal_seq, index._replay_journal(_journal(path)))
        index.forget_idle(time.time())
        # The first save writes a snapshot (_journal_bytes is -1): the journal may end in a torn record,
        # after which nothing appended could be read.
        return index, covered

    def _restore(self, key: Key, heard: float, intervals: list[tuple[int, int]]) -> None:
        self._seen[key] = SeqSet([(start, end) for start, end in intervals])
        self._last_heard[key] = heard

    def _replay_journal(self, path: Path) -> int:
        """Apply the journal's records of this generation; the WAL seq the last one covers (-1: none).
        A torn or damaged tail ends it: that record was never complete, and the WAL still holds what it
        covered (segments go only after a save has completed)."""
        try:
            buffer = path.read_bytes()
        except FileNotFoundError:
            return -1
        covered = -1
        records = (msgspec.msgpack.decode(payload, type=_Delta) for _, payload in scan_records(buffer))
        try:
            header = next(records, None)
            if header is None or header.generation != self._generation:
                return -1
            for delta in records:
                for uid, emitter, heard, intervals in delta.changed:
                    self._restore((uid, emitter), heard, intervals)
                for key in delta.forgotten:
                    self._seen.pop(key, None)
                    self._last_heard.pop(key, None)
                covered = delta.wal_seq
        except msgspec.DecodeError as exc:
            log.warning("%s: a record does not decode (%s); the WAL is replayed from before it", path, exc)
        return covered


def _journal(path: Path) -> Path:
    return path.with_name(f"{path.name}.journal")
