"""Reading the lake: a DuckDB connection whose view `events` covers the live parts, and the one place where
DuckDB's errors become QueryErrors.

Only the parts `live_parts` names are read, so a part that compaction has merged into another is never
counted twice. A `Prune` narrows them before DuckDB opens anything: by the date in the path (the UTC date
of the events' timestamps) and by service, so a 7-day search over a 30-day lake opens 7 days of parts.
A part can still disappear between listing and reading (compaction, retention): the reader then lists
again and retries once.

Columns are taken from the newest part, the parts listed newest first: every part has the same columns
until an agent upgrade adds a field (DESIGN.md: fields are only added, at the end). Then the older parts
lack it, DuckDB reports a schema mismatch, and the reader switches, for good, to matching columns by name
(`union_by_name`, which reads every part's footer before the query starts: 0.1 s for 400 parts, the
reason it is not the default).

A part DuckDB cannot read (truncated, a broken footer or page) is left out, with a warning through the
`auditship.query` logger that names it; the query runs again over the others. Nothing is checked before a
query fails, so a sound lake costs nothing more; after a failure, ondisk/unreadable.py finds
the culprits. The process remembers them, by size and mtime, and leaves them out up front from then on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import unquote

import duckdb
import msgspec

from auditship.ondisk.lake_layout import live_parts
from auditship.ondisk.unreadable import first_line, unreadable
from auditship.query.errors import QueryError

logger = logging.getLogger("auditship.query")
T = TypeVar("T")

VIEW = """
SELECT * FROM read_parquet(
    $parts, hive_partitioning = true, union_by_name = $by_name,
    hive_types = {'date': DATE, 'service': VARCHAR}
)
"""


class Prune(msgspec.Struct, frozen=True, kw_only=True):
    """Which partitions a query can need; None is no bound."""

    start: datetime | None = None
    end: datetime | None = None
    service: str | None = None

    def keeps(self, part: Path) -> bool:
        day, service = partition_values(part.parent)
        if self.service is not None and service != self.service:
            return False
        if self.start is None and self.end is None:
            return True
        if day is None:
            return True  # not ours to judge: DuckDB names the bad partition value
        return (self.start is None or day >= self.start.astimezone(UTC).date()) and (
            self.end is None or day <= self.end.astimezone(UTC).date()
        )


def partition_values(directory: Path) -> tuple[date | None, str]:
    """The `date` (None if it is no date) and `service` (unquoted) of a partition directory."""
    try:
        day: date | None = date.fromisoformat(directory.parent.name.removeprefix("date="))
    except ValueError:
        day = None
    return day, unquote(directory.name.removeprefix("service="))


def list_parts(lake: Path, unreadable: dict[Path, str] | None = None) -> list[Path]:
    """The live parts but the `unreadable` ones; a missing lake or one without parts is a QueryError."""
    if not lake.is_dir():
        raise QueryError(
            f"{lake}: no lake here (the agent's parquet sink writes it; see --lake, --data-dir, --config)"
        )
    left_out = unreadable or {}
    try:
        try:
            parts = live_parts(lake, left_out)
        except FileNotFoundError:  # a directory went while it was listed (retention): once more
            parts = live_parts(lake, left_out)
    except OSError as exc:
        raise QueryError(f"{lake}: cannot list the lake: {exc.strerror or exc}") from exc
    if not parts and left_out:
        raise QueryError(f"{lake}: no part of the lake can be read ({len(left_out)} left out)")
    if not parts:
        raise QueryError(f"{lake}: the lake has no parts yet (is the agent's parquet sink enabled?)")
    return parts


class _KnownUnreadable:
    """The parts this process found unreadable, each with its size and mtime then and why.

    A reader leaves such a part out before DuckDB opens anything, for as long as it is unchanged, so a
    long-lived process (the Python API in a service, `tail -f`) finds a damaged part once rather than at
    every query. Only unreadable parts are kept, so a sound lake costs nothing; at most LIMIT, the oldest
    forgotten first. Readers in several threads share it (the API runs each in asyncio.to_thread).
    """

    LIMIT = 10_000

    def __init__(self) -> None:
        self._found: dict[Path, tuple[int, int, str]] = {}
        self._lock = threading.Lock()

    def add(self, found: dict[Path, str]) -> None:
        for part, reason in found.items():
            try:
                stat = part.stat()
            except OSError:
                continue  # gone: nothing to leave out
            with self._lock:
                self._found[part] = (stat.st_size, stat.st_mtime_ns, reason)
                if len(self._found) > self.LIMIT:
                    del self._found[next(iter(self._found))]

    def among(self, parts: Iterable[Path]) -> dict[Path, str]:
        """Those of `parts` found unreadable before and unchanged since, with why."""
        if not self._found:
            return {}
        with self._lock:
            candidates = [(part, self._found[part]) for part in parts if part in self._found]
        known = {}
        for part, (size, mtime_ns, reason) in candidates:
            try:
                stat = part.stat()
            except OSError:
                continue  # gone meanwhile; listing again will not show it
            if (stat.st_size, stat.st_mtime_ns) == (size, mtime_ns):
                known[part] = reason
        return known


_KNOWN_UNREADABLE = _KnownUnreadable()


class LakeReader:
    """A connection with the view `events` over the live parts that `keeps` (say, `Prune.keeps`) keeps;
    use as a context manager, or call `close()`. `parts` are those, `listed` all the live parts then,
    `skipped` the parts left out because DuckDB cannot read them, with why.

    When `keeps` keeps no part, `events` is empty but has the lake's columns, so queries over it still
    bind (and still fail on an unknown column).
    """

    def __init__(
        self, lake: Path, keeps: Callable[[Path], bool] | None = None, *, sandboxed: bool = True
    ) -> None:
        self.lake = lake
        self.keeps = keeps
        self.by_name = False
        self.skipped: dict[Path, str] = {}
        self.parts: list[Path] = []
        self._reading: list[Path] = []
        self._stale = True  # the view is to be (re)created before the next query
        self.connection = duckdb.connect()
        try:
            self.connection.execute("SET TimeZone = 'UTC'")
            if sandboxed:
                _sandbox(self.connection, lake)
            self._run(lambda: None)
        except BaseException:
            self.connection.close()
            raise

    def _create_view(self) -> None:
        listed = list_parts(self.lake, self.skipped)
        if known := _KNOWN_UNREADABLE.among(listed):
            self._skip(known)
            listed = list_parts(self.lake, self.skipped)
        self.listed = listed[::-1]
        parts = [part for part in self.listed if self.keeps is None or self.keeps(part)]
        # No part kept: any one part gives the columns, and LIMIT 0 none of its rows.
        self._reading = parts or self.listed[:1]
        view = self.connection.sql(
            VIEW, params={"parts": [str(part) for part in self._reading], "by_name": self.by_name}
        )
        if not parts:
            view = view.limit(0)
        self.connection.execute("DROP VIEW IF EXISTS events")
        view.create_view("events")
        self.parts = parts

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> duckdb.DuckDBPyConnection:
        """Run `sql` (over `events`); fetch from what it returns."""
        return self._run(lambda: self.connection.execute(sql, params))

    def _run(self, query: Callable[[], T]) -> T:
        """`query`, over a view made anew whenever a failure asks for it; DuckDB's errors as QueryErrors."""
        try:
            return self._retrying(query)
        except duckdb.InterruptException:
            raise KeyboardInterrupt from None  # Ctrl-C during a query: as during anything else
        except duckdb.Error as exc:
            raise as_query_error(exc) from exc

    def _retrying(self, query: Callable[[], T]) -> T:
        relisted = False
        # Bounded: the switch to union_by_name and the second listing happen once each, and every other
        # retry leaves out one more of the lake's finitely many parts.
        while True:
            try:
                if self._stale:
                    self._create_view()
                    self._stale = False
                return query()
            except duckdb.Error as exc:
                mismatch = isinstance(exc, duckdb.InvalidInputException) and "schema mismatch" in str(exc)
                if mismatch and not self.by_name:
                    self.by_name = True  # parts written by different versions: match their columns by name
                elif isinstance(exc, duckdb.IOException) and not relisted:
                    relisted = True  # a part went after the listing (compaction, retention): list again
                elif not self._skip_unreadable(exc):
                    raise
            self._stale = True

    def _skip_unreadable(self, exc: duckdb.Error) -> bool:
        """Leave out the parts that made `exc`, if it came from parts DuckDB cannot read; False if not."""
        found = unreadable(self.connection, self._reading, exc)
        new = {part: reason for part, reason in found.items() if part not in self.skipped}
        _KNOWN_UNREADABLE.add(new)
        self._skip(new)
        return bool(new)

    def _skip(self, found: dict[Path, str]) -> None:
        for part, reason in found.items():
            self.skipped[part] = reason
            logger.warning("%s: cannot be read (%s); its events are left out", part, reason)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> LakeReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _sandbox(connection: duckdb.DuckDBPyConnection, lake: Path) -> None:
    """Let `connection` read the lake and nothing else: no other file (the data directory's keys
    included), no writes outside it, no extensions to install or load (no network), and no setting
    that a query could change back."""
    connection.execute("SET allowed_directories = ?", [[str(lake.resolve())]])
    connection.execute("SET enable_external_access = false")
    connection.execute("SET autoinstall_known_extensions = false")
    connection.execute("SET autoload_known_extensions = false")
    connection.execute("SET lock_configuration = true")


def as_query_error(exc: duckdb.Error) -> QueryError:
    """DuckDB's message, first line only (the rest draws a caret under the SQL), with what to do."""
    message = first_line(exc)
    if isinstance(exc, duckdb.BinderException):
        return QueryError(f"unknown field or bad expression: {message} (the columns: DESCRIBE events)")
    if isinstance(exc, duckdb.CatalogException):
        return QueryError(f"bad SQL: {message} (the lake's view is called events)")
    if isinstance(exc, duckdb.ParserException):
        return QueryError(f"bad SQL: {message}")
    if isinstance(exc, duckdb.IOException):
        return QueryError(f"cannot read the lake: {message}")
    return QueryError(f"query failed: {message}")
