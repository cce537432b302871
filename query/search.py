"""`audit-query search`: the events that match every filter given, newest first.

Times are ISO 8601 (UTC unless they carry an offset) or ages counted back from now: 15m, 24h, 7d.
--since is inclusive, --until exclusive; both, and --service, also choose which partitions are read.
--type and --outcome may repeat (any of them matches); --severity is a minimum
(info < low < medium < high < critical); --text is a case-insensitive substring of the message or action.
--sensitive NAME=VALUE (may repeat) finds the events whose sensitive field NAME holds VALUE, by the blind
index the agent stores for the fields `[encryption] blind_index` names (its key in --keys-dir, default
the config's keys_dir, else DIR-keys): nothing is decrypted. VALUE is compared normalised (Unicode
NFKC, surrounding spaces removed, case folded).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from auditship.query import location, output
from auditship.query.errors import QueryError
from auditship.query.filters import EventFilter, blind_indexes, enum_values, resource
from auditship.query.lake import LakeReader
from auditship.query.rows import EventPrinter, Found, iter_events
from auditship.query.timespec import time_range
from shipper.event import AuditEventType, AuditOutcome, AuditSeverity

DEFAULT_LIMIT = 100


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "search",
        parents=[common],
        help="find events by type, user, resource, address, service, outcome, severity, time or text",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--type", action="append", default=[], metavar="TYPE", help="event type, e.g. user_login"
    )
    parser.add_argument("--user", metavar="ID", help="user_id")
    parser.add_argument(
        "--resource", metavar="TYPE[:ID]", help="resource_type, and resource_id after a colon"
    )
    parser.add_argument("--ip", metavar="ADDRESS", help="source_ip")
    parser.add_argument("--service", metavar="NAME", help="service_name")
    parser.add_argument("--outcome", action="append", default=[], help="success, failure, error or unknown")
    parser.add_argument(
        "--severity", metavar="LEVEL", help="at least this: info, low, medium, high, critical"
    )
    parser.add_argument(
        "--since", metavar="TIME", help="from this time on: ISO 8601 or an age (15m, 24h, 7d)"
    )
    parser.add_argument("--until", metavar="TIME", help="before this time: ISO 8601 or an age")
    parser.add_argument("--text", metavar="TEXT", help="a substring of the message or the action")
    parser.add_argument(
        "--sensitive",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a sensitive field's value, by its blind index (fields in [encryption] blind_index)",
    )
    parser.add_argument(
        "--keys-dir",
        type=Path,
        metavar="KEYS",
        help="the agent's keys_dir: the blind index key (--sensitive)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"at most this many (default {DEFAULT_LIMIT}; 0: all)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    wanted = filter_of(args)
    output_format = output.chosen(args.output_format)
    if args.limit < 0:
        raise QueryError(f"--limit: {args.limit} is negative; 0 means no limit")
    limit = args.limit or None
    with LakeReader(location.resolve(args).lake, wanted.prune().keeps) as reader:
        printer = EventPrinter(output_format, sys.stdout)
        printer.print(iter_events(reader.execute(*search_sql(wanted, limit))))
    if output_format == "table" and limit is not None and printer.printed == limit:
        print(f"(the newest {limit}; --limit 0 shows all)", file=sys.stderr)
    return 0


def filter_of(args: argparse.Namespace) -> EventFilter:
    """The command line's filters; a bad value is a QueryError that names its option."""
    start, end = time_range(args.since, args.until)
    sensitive = dict(_name_value(given) for given in args.sensitive)
    blind = blind_indexes(args.keys_dir or location.resolve(args).keys, sensitive) if sensitive else ()
    resource_type, resource_id = resource(args.resource) if args.resource is not None else (None, None)
    severity = enum_values(AuditSeverity, [args.severity], "--severity") if args.severity else ()
    return EventFilter(
        event_types=enum_values(AuditEventType, args.type, "--type"),
        user_id=args.user,
        resource_type=resource_type,
        resource_id=resource_id,
        source_ip=args.ip,
        service=args.service,
        outcomes=enum_values(AuditOutcome, args.outcome, "--outcome"),
        min_severity=severity[0] if severity else None,
        start=start,
        end=end,
        text=args.text,
        blind=blind,
    )


def _name_value(given: str) -> tuple[str, str]:
    name, equals, value = given.partition("=")
    if not name or not equals:
        raise QueryError(f"--sensitive: {given!r} is not NAME=VALUE (such as ssn=123-45-6789)")
    return name, value


def search_sql(wanted: EventFilter, limit: int | None) -> tuple[str, list[Any]]:
    condition, params = wanted.where()
    # Only placeholders are formatted into SQL, here and throughout: every value is a parameter.
    sql = f"SELECT * FROM events WHERE {condition} ORDER BY timestamp DESC, wal_seq DESC"  # noqa: S608
    if limit is None:
        return sql, params
    return f"{sql} LIMIT ?", [*params, limit]


def search(lake: Path, wanted: EventFilter, limit: int | None = DEFAULT_LIMIT) -> list[Found]:
    """The matching events, newest first (for the bench and tests; the CLI and API stream them)."""
    with LakeReader(lake, wanted.prune().keeps) as reader:
        return list(iter_events(reader.execute(*search_sql(wanted, limit))))
