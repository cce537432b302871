"""`classify_status`: the outcome and severity of an HTTP status, shared by `AuditLogger.log_api_event`
and the middleware."""

from __future__ import annotations

from shipper.event import AuditOutcome, AuditSeverity

# The answers of classify_status, made once: reading an Enum member costs about a microsecond in
# Python 3.11, and this runs for every request a middleware audits.
_SUCCEEDED = (AuditOutcome.SUCCESS, AuditSeverity.INFO)
_REFUSED = (AuditOutcome.FAILURE, AuditSeverity.MEDIUM)
_FAILED = (AuditOutcome.FAILURE, AuditSeverity.LOW)
_ERRED = (AuditOutcome.ERROR, AuditSeverity.HIGH)
_UNCLEAR = (AuditOutcome.UNKNOWN, AuditSeverity.LOW)


def classify_status(status_code: int) -> tuple[AuditOutcome, AuditSeverity]:
    """Outcome and severity of an HTTP response: 1xx-3xx succeed (INFO); 4xx fail (LOW, but 401 and
    403 MEDIUM: someone was refused); 5xx are errors (HIGH); anything else is UNKNOWN (LOW)."""
    if 100 <= status_code < 400:
        return _SUCCEEDED
    if 400 <= status_code < 500:
        return _REFUSED if status_code in (401, 403) else _FAILED
    if 500 <= status_code < 600:
        return _ERRED
    return _UNCLEAR
