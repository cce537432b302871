"""The ledger finds the holes in the WAL seqs a sink writes, and only those."""

from __future__ import annotations

from auditship.agents.integrity.ledger import SeqLedger


def test_a_run_without_holes_moves_the_ledger_on_and_declares_nothing() -> None:
    ledger = SeqLedger(10)
    assert ledger.wrote([11, 12, 13]) is False
    assert ledger.seq_through == 13 and ledger.pending_gaps() == []
    assert ledger.changed


def test_holes_inside_and_between_batches_are_declared_and_repeats_ignored() -> None:
    ledger = SeqLedger(10)
    assert ledger.wrote([11, 14, 15]) is True
    assert ledger.wrote([12, 15, 16]) is False, "seqs at or below the last written are repeats"
    assert ledger.wrote([20]) is True
    assert ledger.pending_gaps() == [(12, 13), (17, 19)]
    ledger.digested(1, 20)
    assert ledger.pending_gaps() == [(17, 19)]
    ledger.digested(1, 20)
    assert not ledger.changed
