"""`IntakeCounters`: what the intake counts, reported to the supervisor in its `Stats` and shown by
`audit-agent status` under these names."""

from __future__ import annotations

import msgspec


class IntakeCounters(msgspec.Struct):
    received: int = 0
    """Frames taken off the socket or out of spool files, valid or not."""
    appended: int = 0
    """Frames written to the WAL."""
    repeats: int = 0
    """Frames dropped as already in the WAL (the dedupe index knew their emitter and seq)."""
    spooled_in: int = 0
    """Frames appended from spool files."""
    spool_files: int = 0
    """Spool files ingested and deleted."""
    spool_quarantined: int = 0
    """Spool entries moved to quarantine/: not a regular file, unreadable, over
    `intake.max_spool_file_bytes`, holding a corrupt record, or met by any other failure."""
    spool_quarantine_failed: int = 0
    """Attempts to move a spool entry to quarantine/ that failed (the entry stays, tried at each scan)."""
    spool_claim_failed: int = 0
    """Attempts to claim a spool entry (or list a spool directory) that failed (it stays, tried at each
    scan)."""
    wal_undecodable: int = 0
    """WAL records the dedupe index's replay at start could not decode: skipped (sinks skip them too)."""
    write_errors: int = 0
    """WAL appends that failed (and were retried)."""
    rate_limited: int = 0
    """Frames refused unread because their sender was over `intake.sender_rate` (sent again or spooled
    by their emitter)."""
    identity_mismatches: int = 0
    """Events whose sender `[intake.identities]` does not allow their service_name: rejected, or kept
    and flagged (`sender.mismatch`) under `identity_mismatch = "flag"`."""
    curve_revoked: int = 0
    """Frames dropped unread from a CURVE client key revoked while its connection was open."""
    ack_syncs: int = 0
    """WAL syncs made for acknowledged emits (frames marked `sync`) before confirming them: one for all
    such frames read off the socket in one pass (group commit), so it grows far slower than the frames
    under concurrent callers."""
    compliance_flagged: int = 0
    """Events stored with `details.compliance_missing`: they lack a field a compliance preset requires
    (PCI DSS 10.2.2; agents/intake/required_fields.py)."""
    paused: int = 0
    """1 while the WAL is over `wal.max_bytes` and the socket is not read, else 0."""
    subject_keys: int = 0
    """Per-subject keys made (`[subjects] per_subject_keys`), one per data subject and generation."""
    subject_fallbacks: int = 0
    """Events whose subject had no key and could get none (`subjects.max_keys`, a failing disk): their
    sensitive values were sealed under the field key, and are not erasable per subject."""
