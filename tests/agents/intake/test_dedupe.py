"""The intake's memory of which (emitter, seq) it already appended."""

from __future__ import annotations

import random
from pathlib import Path

from auditship.agents.intake.dedupe import MAX_INTERVALS, DedupeIndex, SeqSet


def test_seqs_arriving_in_any_order_are_each_accepted_once() -> None:
    """A shuffled range with every seq sent twice: each is new exactly once, and one interval remains."""
    seqs = list(range(1, 5001)) * 2
    random.Random(3).shuffle(seqs)
    seen = SeqSet()
    assert sum(seen.add(seq) for seq in seqs) == 5000
    assert seen.intervals() == [(1, 5000)]


def test_a_gap_is_remembered_until_it_is_filled() -> None:
    """Spilled seqs leave a gap; they are still new when the spool brings them later."""
    seen = SeqSet()
    for seq in [*range(1, 100), *range(201, 300)]:
        seen.add(seq)
    assert 150 not in seen
    assert all(seen.add(seq) for seq in range(100, 201))
    assert seen.intervals() == [(1, 299)]


def test_memory_is_bounded_by_closing_the_oldest_gap() -> None:
    """Past MAX_INTERVALS disjoint intervals the oldest gap is taken as filled."""
    seen = SeqSet()
    for seq in range(1, 2 * (MAX_INTERVALS + 10), 2):
        seen.add(seq)
    assert len(seen.intervals()) == MAX_INTERVALS
    assert 2 in seen


def test_the_saved_index_comes_back_with_the_wal_seq_it_covers(tmp_path: Path) -> None:
    index = DedupeIndex(horizon_s=3600)
    for seq in range(1, 11):
        index.accept("emitter-a", seq, now=1e12)
    index.save(tmp_path / "index", wal_seq=42)
    loaded, covered = DedupeIndex.load(tmp_path / "index", horizon_s=1e15)
    assert covered == 42
    assert not loaded.accept("emitter-a", 5, now=1e12)
    assert loaded.accept("emitter-a", 11, now=1e12)


def test_a_damaged_index_file_means_replaying_the_whole_wal_not_refusing_to_start(tmp_path: Path) -> None:
    (tmp_path / "index").write_bytes(b"\xc1garbage")
    loaded, covered = DedupeIndex.load(tmp_path / "index", horizon_s=60)
    assert covered == 0
    assert len(loaded) == 0


def test_an_emitter_silent_past_the_horizon_is_forgotten() -> None:
    index = DedupeIndex(horizon_s=60)
    index.accept("old", 1, now=0)
    index.accept("new", 1, now=100)
    assert index.forget_idle(now=100) == 1
    assert len(index) == 1
