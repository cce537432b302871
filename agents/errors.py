"""The agent's errors.

AuditshipError (ondisk.errors)
 ├── ConfigError        the agent cannot run with its config, or in the places it names (a runtime
 │                      directory another user owns, another agent's lock); the message names the
 │                      file and the key, or the path
 ├── FrameRejected      a frame the intake refuses (raised and caught inside the intake): the reason
 │                      goes to rejects/
 ├── UnreadableSpoolEntry  a spool entry that cannot be read whole: it goes to quarantine/
 ├── WalError           the write-ahead log cannot be used: its directory, another process writing it,
 │                      a damaged cursor
 └── SinkError          a sink cannot go on (from open(), or write_batch: a directory it cannot make, a
                        database URL it cannot use, a file it cannot recover). It ends the worker, and
                        the supervisor restarts it after its backoff; the batch stays in the WAL. A
                        batch the destination refuses is no error: write_batch returns it (Refused)
                        and the runner dead-letters it.
"""

from __future__ import annotations

from auditship.ondisk.errors import AuditshipError


class ConfigError(AuditshipError):
    pass


class FrameRejected(AuditshipError):
    pass


class UnreadableSpoolEntry(AuditshipError):
    pass


class WalError(AuditshipError):
    pass


class SinkError(AuditshipError):
    pass
