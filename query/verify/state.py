"""What a sink's trusted digests say, replayed in order: which objects must be there and how each must
hash, which were removed on purpose, the claims on the current file, the declared holes in the WAL
seqs, and how far the sink had written.

A removal takes an object out of what must be there. A later listing of the same path brings back a
part compaction replaced (a merge undone after a crash lists its parts again); any other removed object
stays removed, the listing only saying what it held (a part retention removed before its digest).
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from auditship.ondisk.digests import DigestedObject, RemovedObject, RunRecord, StoredDigest


class Listed(msgspec.Struct, frozen=True):
    entry: DigestedObject
    number: int
    """The digest that listed it last."""
    written: datetime


class Removed(msgspec.Struct, frozen=True):
    removal: RemovedObject
    listed: Listed | None
    """How it was listed before it went (None: never listed, such as a part removed before its digest)."""


class SinkState(msgspec.Struct):
    objects: dict[str, Listed] = msgspec.field(default_factory=dict)
    removed: dict[str, Removed] = msgspec.field(default_factory=dict)
    claims: list[Listed] = msgspec.field(default_factory=list)
    """The current file's claims, oldest first, each different from the one before."""
    gaps: list[tuple[int, int]] = msgspec.field(default_factory=list)
    seq_through: int = 0
    start_through: int = 0
    """Where continuity is checked from: what the chain's first digest adopted lies at or below it."""
    final: bool = False
    """The newest trusted digest is the sink's last before it stopped: nothing may follow it."""


def replay(trusted: list[StoredDigest], record: RunRecord | None = None) -> SinkState:
    """The state the trusted digests describe, held to the run record where it reaches further: a sink
    the run record says stopped cleanly left nothing pending, whatever happened to its last digests."""
    state = SinkState()
    if trusted and trusted[0].digest.number != 1:
        # The chain's start is gone (reported): continuity is checked from the first digest still trusted.
        state.start_through = trusted[0].digest.seq_through
    for stored in trusted:
        digest = stored.digest
        if digest.number == 1:
            state.start_through = digest.seq_through
        for removal in digest.removed:
            state.removed[removal.path] = Removed(removal, state.objects.pop(removal.path, None))
        for entry in digest.objects:
            listed = Listed(entry, digest.number, digest.written)
            removed = state.removed.get(entry.path)
            if removed is not None and removed.removal.reason != "compaction":
                state.removed[entry.path] = Removed(removed.removal, listed)
                continue
            state.objects[entry.path] = listed
            state.removed.pop(entry.path, None)
        if digest.current is not None and (not state.claims or state.claims[-1].entry != digest.current):
            state.claims.append(Listed(digest.current, digest.number, digest.written))
        state.gaps.extend(digest.gaps)
        state.seq_through = digest.seq_through
        state.final = digest.final
    if record is not None and (not trusted or record.number >= trusted[-1].digest.number):
        state.final = record.final
        state.seq_through = max(state.seq_through, record.seq_through)
    return state
