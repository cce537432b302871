"""The errors every part of auditship shares, and those of reading what the agent encrypted.

AuditshipError         the root: agents.errors and query.errors derive their errors from it
 └── CryptoError
      ├── KeyringError      a key file that is missing, unreadable or not a key; the message names the file
      └── DecryptionError   an envelope or a sealed record that does not open (missing key, failed tag,
                            malformed); the message names the event, field and key id, or the record
"""

from __future__ import annotations


class AuditshipError(Exception):
    pass


class CryptoError(AuditshipError):
    pass


class KeyringError(CryptoError):
    pass


class DecryptionError(CryptoError):
    pass
