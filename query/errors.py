"""audit-query's errors.

AuditshipError (ondisk.errors)
 └── QueryError   bad input: a missing directory, an unreadable or corrupt file, a record that does not
                  decode or decrypt. `main` prints the message (which names the file) as one line on
                  stderr and exits with status 2; no traceback.
"""

from __future__ import annotations

from auditship.ondisk.errors import AuditshipError


class QueryError(AuditshipError):
    pass
