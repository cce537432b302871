"""The ledger finds the holes in the WAL seqs a sink writes, and only those."""

from __future__ import annotations

from auditship.agents.integrity.ledger import Lsns, SeqLedger
from auditship.agents.sinks.base import Entry
from tests.agents.sinks.entries import event


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


def test_seqs_read_from_entries_where_needed_behave_as_a_list() -> None:
    """The file sink hands the ledger its batch's entries, not a list of their seqs."""
    batch = [Entry(seq, event(seq)) for seq in (3, 4, 7)]
    ledger = SeqLedger(2)
    assert ledger.wrote(Lsns(batch)) is True
    assert ledger.pending_gaps() == [(5, 6)] and ledger.seq_through == 7
    assert list(Lsns(batch)[1:]) == [4, 7]
