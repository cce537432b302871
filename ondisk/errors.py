"""The errors every part of auditship shares, and those of reading what the agent encrypted.

AuditshipError         the root: agents.errors and query.errors derive their errors from it
 └── CryptoError
      ├── KeyringError      a key file that is missing, unreadable or not a key; the message names the file
      │    └── SubjectErasedError  a per-subject key destroyed on purpose (ondisk/subject_keys.py)
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


class SubjectErasedError(KeyringError):
    """A subject key that was destroyed on purpose (`audit-agent subject forget`): what it sealed is gone."""
