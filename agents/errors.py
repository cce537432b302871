"""The agent's errors.

AuditshipError (ondisk.errors)
 ├── ConfigError        a config file that cannot be used; the message names the file and the key
 ├── FrameRejected      a frame the intake refused; the reason goes to rejects/
 ├── UnreadableSpoolEntry  a spool entry that cannot be read whole: it goes to quarantine/
 ├── WalError           the write-ahead log cannot go on (its directory is unusable)
 └── SinkError          a sink could not deliver a batch
      ├── TransientSinkError   retry later with backoff (destination down, disk full)
      └── PermanentSinkError   retrying cannot help; the batch goes to dead letters
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


class TransientSinkError(SinkError):
    pass


class PermanentSinkError(SinkError):
    pass
