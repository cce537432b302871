"""Errors of field encryption and the spool seal.

AuditshipError (agents.errors)
 └── CryptoError
      ├── KeyringError      a key file that is missing, unreadable or not a key; the message names the file
      └── DecryptionError   an envelope or a sealed record that does not open (missing key, failed tag,
                            malformed); the message names the event, field and key id, or the record
"""

from __future__ import annotations

from auditship.agents.errors import AuditshipError


class CryptoError(AuditshipError):
    pass


class KeyringError(CryptoError):
    pass


class DecryptionError(CryptoError):
    pass
