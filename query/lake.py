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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import duckdb
import msgspec

from agents.sinks.parquet.layout import live_parts
from query.errors import QueryError

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


def list_parts(lake: Path) -> list[Path]:
    """The live parts; a missing lake or one without parts is a QueryError."""
    if not lake.is_dir():
        raise QueryError(
            f"{lake}: no lake here (the agent's parquet sink writes it; see --lake, --data-dir, --config)"
        )
    try:
        try:
            parts = live_parts(lake)
        except FileNotFoundError:  # a directory went while it was listed (retention): once more
            parts = live_parts(lake)
    except OSError as exc:
        raise QueryError(f"{lake}: cannot list the lake: {exc.strerror or exc}") from exc
    if not parts:
        raise QueryError(f"{lake}: the lake has no parts yet (is the agent's parquet sink enabled?)")
    return parts


class LakeReader:
    """A connection with the view `events` over the live parts that `keeps` (say, `Prune.keeps`) keeps;
    use as a context manager, or call `close()`. `parts` are those, `listed` all the live parts then.

    When `keeps` keeps no part, `events` is empty but has the lake's columns, so queries over it still
    bind (and still fail on an unknown column).
    """

    def __init__(self, lake: Path, keeps: Callable[[Path], bool] | None = None) -> None:
        self.lake = lake
        self.keeps = keeps
        self.by_name = False
        self.connection = duckdb.connect()
        try:
            self.connection.execute("SET TimeZone = 'UTC'")
            self.parts = self._create_view()
        except BaseException:
            self.connection.close()
            raise

    def _create_view(self) -> list[Path]:
        listed = self.listed = list_parts(self.lake)[::-1]
        parts = [part for part in listed if self.keeps is None or self.keeps(part)]
        # No part kept: any one part gives the columns, and LIMIT 0 none of its rows.
        read = [str(part) for part in parts or listed[:1]]
        view = self.connection.sql(VIEW, params={"parts": read, "by_name": self.by_name})
        if not parts:
            view = view.limit(0)
        self.connection.execute("DROP VIEW IF EXISTS events")
        view.create_view("events")
        return parts

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> duckdb.DuckDBPyConnection:
        """Run `sql` (over `events`); fetch from what it returns."""
        try:
            return self._execute(sql, params)
        except duckdb.InterruptException:
            raise KeyboardInterrupt from None  # Ctrl-C during a query: as during anything else
        except duckdb.Error as exc:
            raise as_query_error(exc) from exc

    def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> duckdb.DuckDBPyConnection:
        relisted = False
        while True:  # at most three times: each cause of a retry can happen once
            try:
                return self.connection.execute(sql, params)
            except duckdb.InvalidInputException as exc:
                if self.by_name or "schema mismatch" not in str(exc):
                    raise
                self.by_name = True  # parts written by different versions: match their columns by name
            except duckdb.IOException:
                if relisted:
                    raise  # twice in a row is no race
                relisted = True  # a part went after the listing (compaction, retention): list again
            self.parts = self._create_view()

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> LakeReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def as_query_error(exc: duckdb.Error) -> QueryError:
    """DuckDB's message, first line only (the rest draws a caret under the SQL), with what to do."""
    message = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    if isinstance(exc, duckdb.BinderException):
        return QueryError(f"unknown field or bad expression: {message} (the columns: DESCRIBE events)")
    if isinstance(exc, duckdb.CatalogException):
        return QueryError(f"bad SQL: {message} (the lake's view is called events)")
    if isinstance(exc, duckdb.ParserException):
        return QueryError(f"bad SQL: {message}")
    if isinstance(exc, duckdb.IOException):
        return QueryError(f"cannot read the lake: {message}")
    return QueryError(f"query failed: {message}")
