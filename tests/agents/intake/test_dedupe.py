"""The intake's memory of which (emitter, seq) it already appended."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec

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


def test_memory_is_bounded_by_forgetting_the_lowest_interval_never_by_filling_a_gap() -> None:
    """Past MAX_INTERVALS disjoint intervals the lowest is forgotten: a gap is never taken as filled, so
    frames far ahead cannot make events not yet received count as repeats (at worst a duplicate)."""
    seen = SeqSet()
    for seq in range(1, 2 * (MAX_INTERVALS + 10), 2):
        seen.add(seq)
    assert len(seen.intervals()) == MAX_INTERVALS
    assert 2 not in seen
    assert 1 not in seen  # forgotten: a resend of 1 would be appended again


def test_the_same_emitter_id_under_another_uid_is_another_set() -> None:
    """Frames of uid 1002 under the id of uid 1001's emitter leave uid 1001's seqs alone."""
    index = DedupeIndex(horizon_s=3600)
    assert index.accept((1001, "victim"), 1, now=1e12)
    assert all(index.accept((1002, "victim"), seq, now=1e12) for seq in range(2, 5000, 2))
    assert all(index.accept((1001, "victim"), seq, now=1e12) for seq in range(2, 12))


def test_the_saved_index_comes_back_with_the_wal_seq_it_covers(tmp_path: Path) -> None:
    index = DedupeIndex(horizon_s=3600)
    for seq in range(1, 11):
        index.accept((1001, "emitter-a"), seq, now=1e12)
    index.save(tmp_path / "index", wal_seq=42)
    loaded, covered = DedupeIndex.load(tmp_path / "index", horizon_s=1e15)
    assert covered == 42
    assert not loaded.accept((1001, "emitter-a"), 5, now=1e12)
    assert loaded.accept((1001, "emitter-a"), 11, now=1e12)
    assert loaded.accept((None, "emitter-a"), 5, now=1e12)


def test_a_save_appends_only_what_changed_and_the_journal_is_folded_once_it_outgrows_the_snapshot(
    tmp_path: Path,
) -> None:
    """10,000 emitters, then one of them heard from each second: each save appends a record of that
    one (not the 10,000), and everything comes back after a load."""
    path = tmp_path / "index"
    index = DedupeIndex(horizon_s=1e15)
    for number in range(10_000):
        index.accept((1001, f"emitter-{number}"), 1, now=1e12)
    index.save(path, wal_seq=10_000)
    snapshot = path.stat().st_size
    journal = path.with_name("index.journal")
    for seq in range(2, 12):
        index.accept((1001, "emitter-7"), seq, now=1e12)
        before = journal.stat().st_size
        index.save(path, wal_seq=10_000 + seq)
        assert journal.stat().st_size - before < 100
    assert path.stat().st_size == snapshot
    index.save(path, wal_seq=10_011)  # nothing changed: nothing written
    loaded, covered = DedupeIndex.load(path, horizon_s=1e15)
    assert (covered, len(loaded)) == (10_011, 10_000)
    assert not loaded.accept((1001, "emitter-7"), 11, now=1e12)
    assert loaded.accept((1001, "emitter-7"), 12, now=1e12)


def test_a_torn_journal_record_is_left_out_and_the_seq_before_it_is_what_the_index_covers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "index"
    index = DedupeIndex(horizon_s=1e15)
    index.accept((1001, "a"), 1, now=1e12)
    index.save(path, wal_seq=1)
    index.accept((1001, "a"), 2, now=1e12)
    index.save(path, wal_seq=2)
    index.accept((1001, "a"), 3, now=1e12)
    index.save(path, wal_seq=3)
    journal = path.with_name("index.journal")
    journal.write_bytes(journal.read_bytes()[:-3])
    loaded, covered = DedupeIndex.load(path, horizon_s=1e15)
    assert covered == 2
    assert not loaded.accept((1001, "a"), 2, now=1e12)
    assert loaded.accept((1001, "a"), 3, now=1e12)  # the WAL replay after seq 2 brings it back


def test_an_index_of_the_older_format_loads_and_each_emitter_is_taken_over_by_its_first_sender(
    tmp_path: Path,
) -> None:
    """Keyed by emitter id alone, as agents before sender identity saved it."""
    path = tmp_path / "index"
    path.write_bytes(msgspec.msgpack.encode({"wal_seq": 9, "emitters": {"old": (1e12, [(1, 9)])}}))
    loaded, covered = DedupeIndex.load(path, horizon_s=1e15)
    assert (covered, loaded.legacy_loaded) == (9, True)
    assert not loaded.accept((1001, "old"), 5, now=1e12)
    assert loaded.accept((1002, "old"), 5, now=1e12)  # taken over once, by the first


def test_a_damaged_index_file_means_replaying_the_whole_wal_not_refusing_to_start(tmp_path: Path) -> None:
    (tmp_path / "index").write_bytes(b"\xc1garbage")
    loaded, covered = DedupeIndex.load(tmp_path / "index", horizon_s=60)
    assert covered == 0
    assert len(loaded) == 0


def test_an_emitter_silent_past_the_horizon_is_forgotten() -> None:
    index = DedupeIndex(horizon_s=60)
    index.accept((1001, "old"), 1, now=0)
    index.accept((1001, "new"), 1, now=100)
    assert index.forget_idle(now=100) == 1
    assert len(index) == 1


def test_a_withdrawn_seq_is_new_again_and_the_saved_index_does_not_hold_it(tmp_path: Path) -> None:
    """Seqs accepted and then not appended (the WAL write failed) are withdrawn, from the middle or the
    end of an interval: each is accepted again, the others stay repeats, and a save made meanwhile does
    not hold them, so their resend after a restart is not dropped."""
    index = DedupeIndex(horizon_s=3600)
    for seq in range(1, 11):
        index.accept((1001, "emitter-a"), seq, now=1e12)
    index.save(tmp_path / "index", wal_seq=10)
    for seq in (5, 9, 10):
        index.withdraw((1001, "emitter-a"), seq)
    index.withdraw((1001, "never-seen"), 1)
    index.save(tmp_path / "index", wal_seq=10)
    loaded, _ = DedupeIndex.load(tmp_path / "index", horizon_s=1e15)
    for restored in (index, loaded):
        new = [seq for seq in range(1, 12) if restored.accept((1001, "emitter-a"), seq, now=1e12)]
        assert new == [5, 9, 10, 11]


def test_discarding_from_a_seq_set_splits_or_shrinks_its_interval() -> None:
    seen = SeqSet([(1, 10), (20, 20)])
    for seq in (1, 5, 10, 20, 15):
        seen.discard(seq)
    assert seen.intervals() == [(2, 4), (6, 9)]
