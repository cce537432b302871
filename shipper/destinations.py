"""The seed's destination objects. Each turns on, and configures, one sink of the embedded agent:

    FileAuditDestination(log_file_path=..., max_file_size=..., max_files=..., encrypt_sensitive=True)
        -> sinks.file
    DatabaseAuditDestination(db_session=..., encrypt_sensitive=True, batch_size=100), or url=...
        -> sinks.sql
    SIEMAuditDestination(siem_endpoint=..., api_key=..., batch_size=50)
        -> sinks.siem

They go in `AuditConfig.destinations`, beside the sinks its `enable_*` flags turn on; a destination's
settings win over the flags' for its sink. They hold settings only (the agent does the writing), and
check them when built, so a wrong value fails where it was written, with a message that names it.
What reaches the agent is each destination's `settings()`, plain values in the seed's settings
(shipper.seed); the agent maps them onto its sink beside the sink's config. Importing this module loads
only the standard library and msgspec: a database session is read (its engine's URL), SQLAlchemy is
never imported for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

# The agent's SQL sink is synchronous: an async driver in the session's URL is swapped for the
# synchronous driver of the same database.
_SYNC_DRIVERS = {
    "asyncpg": "psycopg",
    "psycopg_async": "psycopg",
    "aiomysql": "pymysql",
    "asyncmy": "pymysql",
}
SQL_DIALECTS = ("postgresql", "mysql", "mariadb", "sqlite")
"""The databases whose conflict-ignoring INSERT the agent's SQL sink knows (agents/sinks/sql/writers.py):
what a destination's URL and the agent's `sinks.sql.url` may name."""


class FileSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a FileAuditDestination tells the agent's file sink."""

    path: str
    """Absolute: taken from the service's working directory."""
    max_file_size: int
    max_files: int
    encrypt_sensitive: bool


class DatabaseSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a DatabaseAuditDestination tells the agent's SQL sink."""

    url: str
    batch_size: int


class SiemSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a SIEMAuditDestination tells the agent's SIEM sink (its generic format)."""

    endpoint: str
    api_key: str
    batch_size: int


@dataclass(frozen=True, slots=True)
class FileAuditDestination:
    """JSON Lines at `log_file_path` (relative paths from the service's working directory), rotated past
    `max_file_size` bytes, `max_files` closed files kept; `encrypt_sensitive=False` writes sensitive
    values decrypted, a deliberate opt-out."""

    log_file_path: Path | str
    max_file_size: int = 100 * 1024 * 1024
    max_files: int = 10
    encrypt_sensitive: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.log_file_path, str | os.PathLike):
            raise TypeError(_wrong(self, "log_file_path", "a path", self.log_file_path))
        if not os.fspath(self.log_file_path):
            raise ValueError(_wrong(self, "log_file_path", "a path", self.log_file_path))
        _check_positive(self, "max_file_size", self.max_file_size)
        _check_positive(self, "max_files", self.max_files)
        _check_bool(self, "encrypt_sensitive", self.encrypt_sensitive)

    def settings(self) -> FileSettings:
        return FileSettings(
            str(Path(self.log_file_path).absolute()),
            self.max_file_size,
            self.max_files,
            self.encrypt_sensitive,
        )


@dataclass(frozen=True, slots=True)
class DatabaseAuditDestination:
    """Rows in a table of the database that `db_session` is bound to (a SQLAlchemy Session, AsyncSession,
    Engine or Connection), or of `url`; the agent connects with its own engine.

    Sensitive values are stored only as ciphertext, so `encrypt_sensitive` must stay True.
    """

    db_session: Any = None
    encrypt_sensitive: bool = True
    batch_size: int = 100
    url: str | None = field(default=None, repr=False)  # repr=False: it may hold a password
    """The SQLAlchemy URL; given, or read from `db_session` when the destination is built."""

    def __post_init__(self) -> None:
        if (self.db_session is None) == (self.url is None):
            raise ValueError(f"{_name(self)}: give either db_session or url, not both nor neither")
        _check_bool(self, "encrypt_sensitive", self.encrypt_sensitive)
        if not self.encrypt_sensitive:
            raise ValueError(
                f"{_name(self)}: encrypt_sensitive=False is not supported: the SQL sink stores sensitive "
                "values only as ciphertext"
            )
        _check_positive(self, "batch_size", self.batch_size)
        url = self.url if self.db_session is None else _bound_url(self, self.db_session)
        if not isinstance(url, str):
            raise TypeError(_wrong(self, "url", "a SQLAlchemy URL string", url))
        object.__setattr__(self, "url", _synchronous(self, url))

    def settings(self) -> DatabaseSettings:
        return DatabaseSettings(self.url or "", self.batch_size)


@dataclass(frozen=True, slots=True)
class SIEMAuditDestination:
    """Batches of events POSTed as JSON to `siem_endpoint` with `api_key`: the SIEM sink's generic format
    (its other formats, Splunk HEC and Elasticsearch, are set in the agent's TOML file)."""

    siem_endpoint: str
    api_key: str = field(repr=False)
    batch_size: int = 500  # as sinks.siem.batch_size: SIEM APIs take hundreds to thousands a request

    def __post_init__(self) -> None:
        if not isinstance(self.siem_endpoint, str) or not self.siem_endpoint.startswith(
            ("http://", "https://")
        ):
            raise ValueError(_wrong(self, "siem_endpoint", "an http(s) URL", self.siem_endpoint))
        if not isinstance(self.api_key, str) or not self.api_key:
            raise ValueError(f"{_name(self)}: api_key: expected a non-empty string")
        _check_positive(self, "batch_size", self.batch_size)

    def settings(self) -> SiemSettings:
        return SiemSettings(self.siem_endpoint, self.api_key, self.batch_size)


Destination = FileAuditDestination | DatabaseAuditDestination | SIEMAuditDestination


class DestinationSettings(NamedTuple):
    """The settings of the destinations given, one of each kind at most."""

    file: FileSettings | None
    database: DatabaseSettings | None
    siem: SiemSettings | None


def destination_settings(destinations: list[Any]) -> DestinationSettings:
    """Each destination's settings, checked to be at most one per sink."""
    seen: dict[type, Any] = {}
    for index, destination in enumerate(destinations):
        if not isinstance(destination, Destination):
            raise TypeError(
                f"AuditConfig.destinations[{index}]: expected a FileAuditDestination, "
                f"DatabaseAuditDestination or SIEMAuditDestination, got {type(destination).__name__}"
            )
        if type(destination) in seen:
            raise ValueError(
                f"AuditConfig.destinations[{index}]: a second {_name(destination)}; the agent has one "
                "sink of each kind"
            )
        seen[type(destination)] = destination.settings()
    return DestinationSettings(
        seen.get(FileAuditDestination), seen.get(DatabaseAuditDestination), seen.get(SIEMAuditDestination)
    )


def _bound_url(owner: object, bound: Any) -> str:
    """The URL, password included, of the engine a Session, AsyncSession, Engine or Connection uses."""
    try:
        bind = bound.get_bind() if hasattr(bound, "get_bind") else bound
    except Exception as exc:  # SQLAlchemy's UnboundExecutionError, caught without importing SQLAlchemy
        raise ValueError(f"{_name(owner)}: db_session is bound to no engine: {exc}") from exc
    url: Any = getattr(getattr(bind, "engine", bind), "url", None)
    if not hasattr(url, "render_as_string"):
        raise TypeError(
            _wrong(owner, "db_session", "a SQLAlchemy Session, AsyncSession, Engine or Connection", bound)
        )
    # str(url) would print the password as ***, and the agent could not log in.
    rendered: str = url.render_as_string(hide_password=False)
    return rendered


def _synchronous(owner: object, url: str) -> str:
    scheme, separator, rest = url.partition("://")
    backend, _, driver = scheme.partition("+")
    if not separator or backend not in SQL_DIALECTS:
        # Not the URL itself in the message: it may hold a password.
        got = f"one for {backend!r}" if separator else "no scheme://"
        raise ValueError(
            f"{_name(owner)}: url: expected a SQLAlchemy URL for one of {', '.join(SQL_DIALECTS)} "
            f"(as in postgresql+psycopg://user@host/db), got {got}"
        )
    if driver == "aiosqlite":
        return f"{backend}://{rest}"
    if driver in _SYNC_DRIVERS:
        return f"{backend}+{_SYNC_DRIVERS[driver]}://{rest}"
    return url


def _check_positive(owner: object, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(_wrong(owner, name, "a positive int", value))


def _check_bool(owner: object, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(_wrong(owner, name, "True or False", value))


def _wrong(owner: object, name: str, expected: str, value: object) -> str:
    return f"{_name(owner)}: {name}: expected {expected}, got {value!r}"


def _name(owner: object) -> str:
    return type(owner).__name__
