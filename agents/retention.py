"""The agent's retention: remove what lies wholly before a horizon (now minus an age).

What goes: a lake partition (date=YYYY-MM-DD, the UTC date of its events) once its day has ended before
the horizon; a closed file of the file sink whose events all have timestamps before it (the current
file never); a day's rejects-YYYYMMDD.jsonl once that day has ended before it; a sink's dead-letter
file last written before it. With only the lake known, only partitions go.

A partition is first renamed out of the lake's view (`.retention-date=...`, which no reader lists) and
then deleted, so a query never sees half of one; a deletion that a crash cut short is finished by the
next run. Lake parts and closed files are recorded in their sink's digests
(agents/integrity/removals.py) before they go, signed, with the horizon that decided it: verify then
reports them as removed on purpose, not missing. With only the lake known, nothing is recorded.
`run_daily` is the agent's job when retention.auto_cleanup is on: now, then every day, logging each
removal. `audit-query retention` (query/retention.py) runs `apply_retention` once.

The SQL sink's table, when that sink is on, loses its rows older than the horizon too, in batches
(agents/sinks/sql/retention.py), reported as one removal of kind `sql` with the rows it deleted.

Two things keep what is old (shipper/compliance.py, agents/holds.py):
- A compliance preset's floor: an age below the strictest floor of the config's `compliance` (and of
  the presets the caller names) is refused whole, with a RetentionFloorError naming the framework.
- A legal hold: a partition, closed file or SQL rows holding an event a hold matches is kept, and
  reported as kept (`held` names the holds). A holds file that cannot be read keeps everything.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal

import msgspec

from auditship.agents import holds as legal_holds
from auditship.agents.config import AgentConfig, default_keys_dir
from auditship.agents.holds import Hold, HoldsError
from auditship.agents.integrity.removals import record_removals
from auditship.agents.sinks.sql.config import SqlSinkConfig
from auditship.ondisk import file_sink
from auditship.ondisk.data_layout import DataLayout
from auditship.ondisk.lake_layout import parts
from shipper.compliance import check_retention, frameworks

log = logging.getLogger("auditship.retention")
Kind = Literal["lake", "files", "rejects", "deadletters", "sql"]
REMOVING_PREFIX = ".retention-"
DAY_S = 24 * 3600.0


class Location(msgspec.Struct, frozen=True):
    """Where the agent's outputs are: what retention removes from, and what audit-query reads."""

    lake: Path
    data: DataLayout | None = None
    """None when nothing but the lake is known (audit-query --lake)."""
    file_sink: Path | None = None
    """The file sink's current file; its closed files sit beside it."""
    keys: Path | None = None
    """The keys directory: the signing key that records removals in the digests, and the run records."""
    sql: SqlSinkConfig | None = None
    """The SQL sink's settings when it is on: its table loses old rows too."""
    compliance: tuple[str, ...] = ()
    """The config's compliance presets, whose floors retention does not go below."""

    @classmethod
    def of_data_dir(cls, root: Path, config: AgentConfig | None = None) -> Location:
        """`root` laid out as `config` (default: the defaults) says; relative sink paths are under it."""
        chosen = config or AgentConfig()
        sinks = chosen.sinks
        keys = config.keys_path if config is not None else default_keys_dir(root)
        sql = sinks.sql if sinks.sql.enabled else None
        lake = root / sinks.parquet.path
        return cls(lake, DataLayout(root), root / sinks.file.path, keys, sql, tuple(chosen.compliance))


class Removal(msgspec.Struct, frozen=True):
    kind: Kind
    path: Path | str
    """The file or directory; for `sql`, the table and its database (password hidden)."""
    bytes: int
    error: str | None = None
    """Why it could not be removed; None when it was (or, in a dry run, would be)."""
    rows: int | None = None
    """For `sql`: the rows deleted (or kept, when `held`)."""
    held: str | None = None
    """Why it is kept although old: the legal holds that match events in it. Not removed."""


def apply_retention(
    where: Location,
    older_than: timedelta,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    compliance: Sequence[str] = (),
    setting: str = "older_than",
) -> list[Removal]:
    """Remove (or with `dry_run` only list) what is wholly older than `now - older_than`, and is not
    held. RetentionFloorError (a ValueError naming `setting`) when `older_than` is below the floor of
    the location's compliance presets or of `compliance` (names, case-insensitive; unknown ones pass)."""
    chosen = frameworks([*where.compliance, *compliance], strict=False)
    check_retention(older_than / timedelta(days=1), chosen, setting)
    horizon = (now or datetime.now(UTC)) - older_than
    try:
        holds = legal_holds.load(where.data.holds) if where.data is not None else []
    except HoldsError as exc:
        return [Removal("lake", where.lake, 0, f"nothing removed: {exc}")]
    planned = list(_plan(where, horizon, holds))
    if dry_run:
        return [*planned, *_sql(where, horizon, holds, dry_run=True)]
    _finish_interrupted(where.lake)
    going = [removal for removal in planned if removal.held is None and removal.error is None]
    refused = _record(where, going, f"retention: everything before {horizon.isoformat(timespec='seconds')}")
    kept = {id(removal) for removal in planned} - {id(removal) for removal in going}
    done = [
        removal
        if id(removal) in kept
        else msgspec.structs.replace(removal, error=refused[removal.kind])
        if removal.kind in refused
        else _remove(removal, where.lake)
        for removal in planned
    ]
    return [*done, *_sql(where, horizon, holds, dry_run=False)]


def _sql(where: Location, horizon: datetime, holds: list[Hold], *, dry_run: bool) -> list[Removal]:
    """The SQL sink's removal (and its held rows), when that sink is on."""
    if where.sql is None or where.data is None:
        return []
    # Here, not at the top: SQLAlchemy is loaded only where the SQL sink is on.
    from sqlalchemy.exc import SQLAlchemyError

    from auditship.agents.errors import SinkError
    from auditship.agents.sinks.sql.retention import remove_old_rows

    try:
        result = remove_old_rows(where.sql, where.data.root, horizon, holds, dry_run=dry_run)
    except (SQLAlchemyError, SinkError) as exc:
        return [Removal("sql", where.sql.table, 0, f"rows not deleted: {exc}".splitlines()[0])]
    found = [Removal("sql", result.where, 0, rows=result.removed)]
    if result.held:
        named = legal_holds.names([hold for hold in holds if hold.name in result.holds])
        found.append(Removal("sql", result.where, 0, rows=result.held, held=named))
    return found


def run_daily(config: AgentConfig, stop: threading.Event) -> None:
    """The agent's retention: now, then every day, until `stop` is set. Never raises: a failure is logged
    and tried again the next day."""
    where = Location.of_data_dir(config.data_path, config)
    days = config.retention.days
    while True:  # one run a day; `stop` ends it
        try:
            for removal in apply_retention(where, timedelta(days=days), setting="retention.days"):
                if removal.held is not None:
                    log.info(
                        "retention: kept %s (%s) under legal hold: %s",
                        removal.path,
                        removal.kind,
                        removal.held,
                    )
                elif removal.kind == "sql" and removal.error is None:
                    if not removal.rows:
                        continue  # a day with nothing old: nothing to say
                    log.info(
                        "retention: deleted %d rows older than %d days from %s",
                        removal.rows,
                        days,
                        removal.path,
                    )
                elif removal.error is None:
                    log.info(
                        "retention: removed %s (%s, %d bytes): all of it is older than %d days",
                        removal.path,
                        removal.kind,
                        removal.bytes,
                        days,
                    )
                else:
                    log.error(
                        "retention: cannot remove %s: %s; tried again tomorrow", removal.path, removal.error
                    )
        except Exception:  # a bug here must not stop the agent; the traceback goes to its log
            log.exception("retention failed; tried again tomorrow")
        if stop.wait(DAY_S):
            return


def _plan(where: Location, horizon: datetime, holds: list[Hold]) -> Iterator[Removal]:
    last_day = (horizon.astimezone(UTC) - timedelta(days=1)).date()  # days that ended at the horizon
    for directory in sorted(where.lake.glob("date=*")):
        if (day := _day(directory.name.removeprefix("date="), "%Y-%m-%d")) and day <= last_day:
            yield _held_partition(Removal("lake", directory, _size(directory)), day, holds)
    if where.file_sink is not None and where.file_sink.parent.is_dir():
        for closed in file_sink.scan_closed(where.file_sink.parent, where.file_sink.stem):
            if (matched := _all_before(closed.path, horizon, holds)) is not None:
                removal = Removal("files", closed.path, _size(closed.path))
                yield msgspec.structs.replace(removal, held=matched) if matched else removal
    if where.data is None:
        return
    if where.data.rejects.is_dir():
        for path in sorted(where.data.rejects.glob("rejects-*.jsonl")):
            if (day := _day(path.stem.removeprefix("rejects-"), "%Y%m%d")) and day <= last_day:
                yield Removal("rejects", path, _size(path))
    deadletters = where.data.deadletters
    if deadletters.is_dir():
        for path in sorted(deadletters.glob("*.jsonl")):
            if datetime.fromtimestamp(path.stat().st_mtime, UTC) < horizon:
                yield Removal("deadletters", path, _size(path))


def _record(where: Location, planned: list[Removal], policy: str) -> dict[Kind, str]:
    """Record the planned removals of lake parts and closed files in their sinks' digests; the kinds
    whose record could not be written, with why (they are then not removed)."""
    if where.data is None or where.keys is None:
        return {}
    refused: dict[Kind, str] = {}
    sinks: tuple[tuple[Kind, str], ...] = (("lake", "parquet"), ("files", "file"))
    for kind, sink in sinks:
        paths = [path for removal in planned if removal.kind == kind for path in _objects(removal)]
        problem = record_removals(where.data.root, where.keys, sink, paths, reason="retention", policy=policy)
        if problem is not None:
            refused[kind] = problem
    return refused


def _objects(removal: Removal) -> list[Path]:
    """The digested objects a removal takes: a partition's parts, or the closed file itself."""
    path = Path(removal.path)
    if removal.kind != "lake":
        return [path]
    return _part_paths(path)


def _part_paths(partition: Path) -> list[Path]:
    return [part.path for directory in sorted(partition.glob("service=*")) for part in parts(directory)]


def _held_partition(removal: Removal, day: date, holds: list[Hold]) -> Removal:
    """The partition's removal, marked held when an event of it matches a hold (or with an error when
    its parts cannot be read to tell: then it is kept too)."""
    start = datetime.combine(day, time(), UTC)
    candidates = [hold for hold in holds if hold.overlaps(start, start + timedelta(days=1))]
    files = [str(path) for path in _part_paths(Path(removal.path))] if candidates else []
    if not files:
        return removal
    import duckdb  # the agent's; loaded only when a hold may reach an old partition

    matched: list[Hold] = []
    try:
        with duckdb.connect(config={"threads": 1}) as db:
            for hold in candidates:
                condition, params = hold.sql()
                sql = f"SELECT 1 FROM read_parquet(?) WHERE {condition} LIMIT 1"  # noqa: S608 - placeholders only
                if db.execute(sql, [files, *params]).fetchone() is not None:
                    matched.append(hold)
    except duckdb.Error as exc:
        return msgspec.structs.replace(
            removal, error=f"kept: cannot tell whether a legal hold covers it ({exc})"
        )
    return msgspec.structs.replace(removal, held=legal_holds.names(matched)) if matched else removal


def _day(text: str, pattern: str) -> date | None:
    try:
        return datetime.strptime(text, pattern).replace(tzinfo=UTC).date()
    except ValueError:
        return None  # not a name we wrote: left alone


class _Stamp(msgspec.Struct):
    timestamp: datetime
    user_id: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None


_stamp = msgspec.json.Decoder(_Stamp)
TEXT_HELD = "the text format does not say which events a legal hold matches: kept while any hold exists"


def _all_before(path: Path, horizon: datetime, holds: list[Hold]) -> str | None:
    """None unless every event in a closed file is older than `horizon` (reading stops at the first that
    is not); then "" when it may go, else why it is held: the holds its events match. A file that cannot
    be read or holds a line that is no event is kept (and, being kept, the sink's own max_files limit
    still applies to it)."""
    matched: dict[str, Hold] = {}
    try:
        for line in file_sink.read_lines(path):
            # JSON Lines records, or the text format's lines, which start with the timestamp.
            if not line.startswith(b"{"):
                if _text_stamp(line) >= horizon:
                    return None
                if holds:
                    matched[TEXT_HELD] = holds[0]
                continue
            stamp = _stamp.decode(line)
            if stamp.timestamp >= horizon:
                return None
            for hold in holds:
                if hold.name not in matched and hold.matches(
                    stamp.user_id, stamp.resource_type, stamp.resource_id, stamp.timestamp
                ):
                    matched[hold.name] = hold
    except (OSError, file_sink.CorruptFileError, msgspec.DecodeError, ValueError) as exc:
        log.warning("retention: %s kept: cannot read its events' times (%s)", path, exc)
        return None
    if TEXT_HELD in matched:
        return TEXT_HELD
    return legal_holds.names(list(matched.values()))


def _text_stamp(line: bytes) -> datetime:
    moment = datetime.fromisoformat(line.split(b" ", 1)[0].decode())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def _remove(removal: Removal, lake: Path) -> Removal:
    path = Path(removal.path)
    try:
        if removal.kind == "lake":
            hidden = lake / (REMOVING_PREFIX + path.name)
            path.rename(hidden)
            shutil.rmtree(hidden)
        else:
            path.unlink()
    except OSError as exc:
        return msgspec.structs.replace(removal, error=exc.strerror or str(exc))
    return removal


def _finish_interrupted(lake: Path) -> None:
    """Delete what an earlier run had hidden but not yet deleted (a crash in between)."""
    if lake.is_dir():
        for hidden in lake.glob(REMOVING_PREFIX + "*"):
            shutil.rmtree(hidden, ignore_errors=True)
