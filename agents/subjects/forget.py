"""`audit-agent subject forget USER`: destroy a data subject's keys, so that every sensitive value sealed
for them opens to nothing (readers show ondisk.subject_keys.ERASED_VALUE), and record it in the trail.

For each generation of the subject's key (ondisk/subject_keys.py), oldest first: its tombstone is
published (so that readers say "erased" rather than "missing", and the intake moves on to a new key),
then the key file is overwritten with random bytes, fsynced, unlinked, and the directory fsynced. The
events stay: the trail still says what happened, when and by whom.

The erasure is recorded as a DATA_RETENTION event of the service `audit-agent` (action
`subject_forget`, resource `data_subject:<USER>`, the destroyed key ids in `details`), written to the
agent's spool as the detector writes its alerts (agents/detect/outbox.py): the intake takes it within
`intake.spool_scan_interval_s` while it runs, or at its next start.

What this cannot reach: copies of keys_dir (backups) made before the forget hold the key, and on
flash or copy-on-write storage the overwritten blocks may survive; values delivered in clear (the file
sink's `encrypt_sensitive = false`, the console) were never sealed. Keep keys_dir's backups shorter
than your erasure deadline.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from auditship.agents.config import AgentConfig
from auditship.agents.crypto.key_files import publish
from auditship.agents.durable import fsync_directory
from auditship.ondisk.errors import KeyringError
from auditship.ondisk.files import write_all
from auditship.ondisk.subject_keys import MAX_GENERATIONS, SubjectCiphers, check_subject
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity
from shipper.spool_writer import SpoolWriter
from shipper.wire import Frame, frame_encoder

FORGET_SERVICE = "audit-agent"
FORGET_ACTION = "subject_forget"
SUBJECT_RESOURCE = "data_subject"


def forget(keys_dir: Path, subject: str) -> list[str]:
    """Destroy every key of `subject` in `keys_dir`; the ids of those destroyed now ([] when it has none,
    or all were destroyed before). ValueError for a subject that cannot be one, KeyringError when a key
    cannot be destroyed."""
    check_subject(subject)
    ciphers = SubjectCiphers(keys_dir)
    if not ciphers.files.master.exists():
        return []  # no subject key was ever made here
    master = ciphers.master()
    destroyed = []
    for generation in range(MAX_GENERATIONS):
        key_id = master.key_id(subject, generation)
        path = ciphers.files.key(key_id)
        tombstone = ciphers.files.tombstone(key_id)
        if path.exists():
            publish(tombstone, b"")
            destroy(path)
            destroyed.append(key_id)
        elif not tombstone.exists():
            break  # the generations end with the first that never was
    return destroyed


def destroy(path: Path) -> None:
    """Overwrite the key file with random bytes, durably, then unlink it, durably."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            write_all(fd, os.urandom(os.fstat(fd).st_size))
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()
        fsync_directory(path.parent)
    except OSError as exc:
        raise KeyringError(f"{path}: cannot destroy the subject key: {exc.strerror}") from exc


def erasure_event(subject: str, destroyed: list[str]) -> AuditEvent:
    count = len(destroyed)
    return AuditEvent(
        event_type=AuditEventType.DATA_RETENTION,
        severity=AuditSeverity.MEDIUM,
        outcome=AuditOutcome.SUCCESS,
        message=f"data subject forgotten: {count} subject key{'s' if count != 1 else ''} destroyed",
        action=FORGET_ACTION,
        resource_type=SUBJECT_RESOURCE,
        resource_id=subject,
        service_name=FORGET_SERVICE,
        details={"key_ids": destroyed, "keys_destroyed": count},
    )


def record(spool: Path, event: AuditEvent) -> Path:
    """Write `event` to the agent's spool under an emitter id of its own (so the intake's dedupe never
    takes it for another's repeat); the spool file's path. OSError when the spool cannot be written."""
    emitter = f"auditship-forget-{os.urandom(8).hex()}"
    writer = SpoolWriter(spool, emitter, create=False)
    try:
        writer.write([(frame_encoder.encode(Frame(emitter, 1, 0, event)), False)])
    finally:
        writer.close()
    fsync_directory(spool)
    return writer.path


def run_forget(config: AgentConfig, subject: str) -> int:
    """The command: destroy, tell, record. 0 when the subject has no live key left and that is recorded;
    1 when it could not be recorded, or when per_subject_keys is off and no key was destroyed."""
    try:
        check_subject(subject)
    except ValueError as exc:
        print(f"audit-agent: subject forget: {exc}", file=sys.stderr)
        return 2
    shown = repr(subject) if len(subject) <= 80 else f"{subject[:77]!r}..."
    destroyed = forget(config.keys_path, subject)
    for key_id in destroyed:
        print(f"destroyed subject key {key_id}")
    if not destroyed:
        print(f"no live subject key for {shown}: nothing sealed for them is left to erase")
    if not config.subjects.per_subject_keys:
        print(
            "warning: [subjects] per_subject_keys is off in this config: values sealed under the field "
            "keys are not erasable per subject",
            file=sys.stderr,
        )
    try:
        path = record(config.spool_path, erasure_event(subject, destroyed))
    except OSError as exc:
        print(
            f"audit-agent: the keys are destroyed, but the DATA_RETENTION event could not be written to "
            f"the spool {config.spool_path}: {exc}; record the erasure of {shown} by hand",
            file=sys.stderr,
        )
        return 1
    print(f"recorded as a DATA_RETENTION event ({path.name}); the agent takes it from its spool")
    # Nothing erasable, and nothing could have been: a script must not take that for an erasure.
    return 0 if destroyed or config.subjects.per_subject_keys else 1
