"""`audit-query retention`: remove what lies wholly before the horizon (now minus --older-than).

    lake         a whole date=YYYY-MM-DD partition once the day has ended before the horizon (the date
                 is the UTC date of its events)
    files        a closed file of the file sink whose events all have timestamps before the horizon (the
                 current file never)
    rejects      rejects-YYYYMMDD.jsonl once that day has ended before the horizon
    deadletters  a sink's dead-letter file last written before the horizon

Each is printed, as removed, would be (--dry-run), or failed (then the exit status is 1). With --lake
only the lake is known, so only partitions go. A partition is first renamed out of the
lake's view (`.retention-date=...`, which no reader lists) and then deleted, so a query never sees half of
one; a deletion that a crash cut short is finished by the next run. The agent does this daily when
retention.auto_cleanup is on (`run_daily`), logging each removal.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import msgspec

from auditship.agents.config import AgentConfig
from auditship.agents.sinks import filestore
from auditship.query import location, output
from auditship.query.errors import QueryError
from auditship.query.location import Location
from auditship.query.timespec import parse_age

log = logging.getLogger("auditship.retention")
Kind = Literal["lake", "files", "rejects", "deadletters"]
REMOVING_PREFIX = ".retention-"
DAY_S = 24 * 3600.0


class Removal(msgspec.Struct, frozen=True):
    kind: Kind
    path: Path
    bytes: int
    error: str | None = None
    """Why it could not be removed; None when it was (or, in a dry run, would be)."""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "retention",
        parents=[common],
        help="remove lake partitions, closed files, rejects and dead letters past the horizon",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--older-than",
        metavar="AGE",
        help="remove what is older: a number and s, m, h, d or w, such as 365d (default: the config's "
        "retention.days, 365)",
    )
    parser.add_argument("--dry-run", action="store_true", help="report what would be removed; remove nothing")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    where = location.resolve(args)
    older_than = args.older_than or f"{location.agent_config(args).retention.days}d"
    age = parse_age(older_than, "--older-than")
    if where.data is None and not where.lake.is_dir():
        raise QueryError(f"{where.lake}: no lake here (see --lake, --data-dir, --config)")
    if where.data is not None and not where.data.root.is_dir():
        raise QueryError(f"{where.data.root}: no such data directory (see --data-dir, --config)")
    removals = apply_retention(where, age, dry_run=args.dry_run)
    done = "would remove" if args.dry_run else "removed"
    rows = [(f"failed: {r.error}" if r.error else done, r.kind, str(r.path), r.bytes) for r in removals]
    fmt = output.chosen(args.format)
    output.write_rows(("action", "kind", "path", "bytes"), rows, fmt, sys.stdout)
    if fmt == "table":
        total = sum(r.bytes for r in removals if r.error is None)
        count = sum(r.error is None for r in removals)
        print(f"{done} {count} ({total / 2**20:,.1f} MiB): everything older than {older_than}")
    return 1 if any(r.error for r in removals) else 0


def apply_retention(
    where: Location, older_than: timedelta, *, dry_run: bool = False, now: datetime | None = None
) -> list[Removal]:
    """Remove (or with `dry_run` only list) what is wholly older than `now - older_than`."""
    horizon = (now or datetime.now(UTC)) - older_than
    planned = list(_plan(where, horizon))
    if dry_run:
        return planned
    _finish_interrupted(where.lake)
    return [_remove(removal, where.lake) for removal in planned]


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
        for closed in filestore.scan_closed(where.file_sink.parent, where.file_sink.stem):
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


def _day(text: str, fmt: str) -> date | None:
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=UTC).date()
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
        for line in filestore.read_lines(path):
            # JSON Lines records, or the text format's lines, which start with the timestamp.
            stamp = _stamp.decode(line).timestamp if line.startswith(b"{") else _text_stamp(line)
            if stamp >= horizon:
                return False
    except (OSError, filestore.CorruptFileError, msgspec.DecodeError, ValueError) as exc:
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
