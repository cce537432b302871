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
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

import msgspec

from auditship.agents.config import AgentConfig, default_keys_dir
from auditship.agents.integrity.removals import record_removals
from auditship.ondisk import file_sink
from auditship.ondisk.data_layout import DataLayout
from auditship.ondisk.lake_layout import parts

log = logging.getLogger("auditship.retention")
Kind = Literal["lake", "files", "rejects", "deadletters"]
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

    @classmethod
    def of_data_dir(cls, root: Path, config: AgentConfig | None = None) -> Location:
        """`root` laid out as `config` (default: the defaults) says; relative sink paths are under it."""
        sinks = (config or AgentConfig()).sinks
        keys = config.keys_path if config is not None else default_keys_dir(root)
        return cls(root / sinks.parquet.path, DataLayout(root), root / sinks.file.path, keys)


class Removal(msgspec.Struct, frozen=True):
    kind: Kind
    path: Path
    bytes: int
    error: str | None = None
    """Why it could not be removed; None when it was (or, in a dry run, would be)."""


def apply_retention(
    where: Location, older_than: timedelta, *, dry_run: bool = False, now: datetime | None = None
) -> list[Removal]:
    """Remove (or with `dry_run` only list) what is wholly older than `now - older_than`."""
    horizon = (now or datetime.now(UTC)) - older_than
    planned = list(_plan(where, horizon))
    if dry_run:
        return planned
    _finish_interrupted(where.lake)
    refused = _record(where, planned, f"retention: everything before {horizon.isoformat(timespec='seconds')}")
    return [
        msgspec.structs.replace(removal, error=refused[removal.kind])
        if removal.kind in refused
        else _remove(removal, where.lake)
        for removal in planned
    ]


def run_daily(config: AgentConfig, stop: threading.Event) -> None:
    """The agent's retention: now, then every day, until `stop` is set. Never raises: a failure is logged
    and tried again the next day."""
    where = Location.of_data_dir(config.data_path, config)
    days = config.retention.days
    while True:  # one run a day; `stop` ends it
        try:
            for removal in apply_retention(where, timedelta(days=days)):
                if removal.error is None:
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


def _plan(where: Location, horizon: datetime) -> Iterator[Removal]:
    last_day = (horizon.astimezone(UTC) - timedelta(days=1)).date()  # days that ended at the horizon
    for directory in sorted(where.lake.glob("date=*")):
        if (day := _day(directory.name.removeprefix("date="), "%Y-%m-%d")) and day <= last_day:
            yield Removal("lake", directory, _size(directory))
    if where.file_sink is not None and where.file_sink.parent.is_dir():
        for closed in file_sink.scan_closed(where.file_sink.parent, where.file_sink.stem):
            if _all_before(closed.path, horizon):
                yield Removal("files", closed.path, _size(closed.path))
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
    if removal.kind != "lake":
        return [removal.path]
    return [part.path for directory in sorted(removal.path.glob("service=*")) for part in parts(directory)]


def _day(text: str, pattern: str) -> date | None:
    try:
        return datetime.strptime(text, pattern).replace(tzinfo=UTC).date()
    except ValueError:
        return None  # not a name we wrote: left alone


class _Stamp(msgspec.Struct):
    timestamp: datetime


_stamp = msgspec.json.Decoder(_Stamp)


def _all_before(path: Path, horizon: datetime) -> bool:
    """Whether every event in a closed file is older than `horizon`; reading stops at the first that is
    not. A file that cannot be read or holds a line that is no event is kept (and, being kept, the sink's
    own max_files limit still applies to it)."""
    try:
        for line in file_sink.read_lines(path):
            # JSON Lines records, or the text format's lines, which start with the timestamp.
            stamp = _stamp.decode(line).timestamp if line.startswith(b"{") else _text_stamp(line)
            if stamp >= horizon:
                return False
    except (OSError, file_sink.CorruptFileError, msgspec.DecodeError, ValueError) as exc:
        log.warning("retention: %s kept: cannot read its events' times (%s)", path, exc)
        return False
    return True


def _text_stamp(line: bytes) -> datetime:
    moment = datetime.fromisoformat(line.split(b" ", 1)[0].decode())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def _remove(removal: Removal, lake: Path) -> Removal:
    try:
        if removal.kind == "lake":
            hidden = lake / (REMOVING_PREFIX + removal.path.name)
            removal.path.rename(hidden)
            shutil.rmtree(hidden)
        else:
            removal.path.unlink()
    except OSError as exc:
        return msgspec.structs.replace(removal, error=exc.strerror or str(exc))
    return removal


def _finish_interrupted(lake: Path) -> None:
    """Delete what an earlier run had hidden but not yet deleted (a crash in between)."""
    if lake.is_dir():
        for hidden in lake.glob(REMOVING_PREFIX + "*"):
            shutil.rmtree(hidden, ignore_errors=True)
