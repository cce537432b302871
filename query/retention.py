"""`audit-query retention`: remove what lies wholly before the horizon (now minus --older-than).

    lake         a whole date=YYYY-MM-DD partition once the day has ended before the horizon (the date
                 is the UTC date of its events)
    files        a closed file of the file sink whose events all have timestamps before the horizon (the
                 current file never)
    rejects      rejects-YYYYMMDD.jsonl once that day has ended before the horizon
    deadletters  a sink's dead-letter file last written before the horizon

    sql          the rows of the SQL sink's table (when the config turns that sink on) older than the
                 horizon, deleted in batches; `rows` says how many

Each is printed, as removed, would be (--dry-run), kept (a legal hold, `audit-agent hold`, matches an
event in it: the holds are named) or failed (then the exit status is 1). An age below the floor of the
config's compliance presets (SOX 7 years, HIPAA 6, PCI 1) is refused, naming the framework, and nothing
is removed. With --lake only the lake is known, so only partitions go, and legal holds, kept in the data
directory, are not seen. A partition is first renamed out of the
lake's view (`.retention-date=...`, which no reader lists) and then deleted, so a query never sees half of
one; a deletion that a crash cut short is finished by the next run. The agent does this daily when
retention.auto_cleanup is on (`run_daily`), logging each removal.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from auditship.agents.retention import Removal, apply_retention
from auditship.query import location, output
from auditship.query.errors import QueryError
from auditship.query.timespec import parse_age
from shipper.compliance import RetentionFloorError


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
    try:
        removals = apply_retention(where, age, dry_run=args.dry_run, setting=f"--older-than {older_than}")
    except RetentionFloorError as exc:
        raise QueryError(str(exc)) from exc
    done = "would remove" if args.dry_run else "removed"
    rows = [(_action(r, done), r.kind, str(r.path), r.bytes, r.rows) for r in removals]
    output_format = output.chosen(args.output_format)
    output.write_rows(("action", "kind", "path", "bytes", "rows"), rows, output_format, sys.stdout)
    if output_format == "table":
        total = sum(r.bytes for r in removals if r.error is None and r.held is None)
        count = sum(r.error is None and r.held is None and r.kind != "sql" for r in removals)
        print(f"{done} {count} ({total / 2**20:,.1f} MiB): everything older than {older_than}")
    return 1 if any(r.error for r in removals) else 0


def _action(removal: Removal, done: str) -> str:
    if removal.error:
        return f"failed: {removal.error}"
    return f"kept: legal hold {removal.held}" if removal.held is not None else done
