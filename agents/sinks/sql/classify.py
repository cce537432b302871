"""What a failed write means: ERRORED (retry the batch after a backoff) or REJECTED (retrying cannot help).

The SQLSTATE decides where the driver reports one (PostgreSQL, and MySQL/MariaDB for server errors):

    22 data exception, 23 integrity constraint, 42 syntax or access rule (permission denied, unknown
    column), 0A feature not supported, 44 check option   -> REJECTED
    everything else: 08 connection, 40 deadlock or serialization, 53 out of resources (disk full),
    57 shutdown or cancel, 28 authentication, HY000...  -> ERRORED

An undefined table (42P01, 42S02) is ERRORED: the sink creates the table again before the retry.
Without a SQLSTATE (errors raised by the driver itself, SQLite) the PEP 249 class decides: DataError,
IntegrityError, ProgrammingError and NotSupportedError are REJECTED, the rest (OperationalError,
InterfaceError...) ERRORED; SQLite's "read-only database" and "permission denied" are REJECTED as
PostgreSQL's permission errors are. A value that cannot even be converted (a timestamp with no UTC
equivalent, a msgpack extension value JSON cannot hold: BAD_VALUES, raised while a row is built or
bound) is REJECTED.

Unknown failures are ERRORED: a batch kept in the WAL and retried is never lost, and the runner's log
says that it is retrying; dead-lettering on a guess could be.
"""

from __future__ import annotations

import msgspec
from sqlalchemy.exc import DBAPIError, StatementError

from auditship.agents.sinks.base import Delivery

_REFUSED_SQLSTATE_CLASSES = frozenset({"22", "23", "42", "0A", "44"})
_UNDEFINED_TABLE = frozenset({"42P01", "42S02"})
_REFUSED_PEP249 = frozenset({"DataError", "IntegrityError", "ProgrammingError", "NotSupportedError"})
_REFUSED_SQLITE = frozenset({"SQLITE_READONLY", "SQLITE_PERM"})
BAD_VALUES = (TypeError, ValueError, OverflowError, msgspec.EncodeError)
"""What building or binding a row raises for a value it cannot convert."""


def classify(exc: Exception) -> Delivery:
    """ERRORED or REJECTED for an exception raised while writing a batch (SQLAlchemy's or the driver's)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return Delivery.ERRORED
    return Delivery.REJECTED if _retrying_cannot_help(_cause(exc)) else Delivery.ERRORED


def _retrying_cannot_help(cause: BaseException) -> bool:
    if isinstance(cause, BAD_VALUES):
        return True
    sqlstate = getattr(cause, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        return sqlstate not in _UNDEFINED_TABLE and sqlstate[:2] in _REFUSED_SQLSTATE_CLASSES
    if getattr(cause, "sqlite_errorname", None) in _REFUSED_SQLITE:
        return True
    # PEP 249 names the classes alike in every driver, and SQLAlchemy mirrors them.
    return any(cls.__name__ in _REFUSED_PEP249 for cls in type(cause).__mro__)


def describe(exc: Exception) -> str:
    """The database's own message, one line: never SQLAlchemy's rendering, which lists the parameters
    (whole events) after it."""
    cause = _cause(exc)
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else 'no message'}"


def _cause(exc: Exception) -> BaseException:
    """The driver's exception inside SQLAlchemy's wrapper, or the exception itself."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        return exc.orig
    return exc
