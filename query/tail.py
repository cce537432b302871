"""`audit-query tail`: the newest events (oldest of them first); with -f, then each event as it lands.

Following looks at the lake every --interval seconds for parts it has not read. Within a partition the
sink publishes parts in WAL order, so a partition's new events are those above the highest WAL sequence
number already read there; a part that compaction merged from parts already read adds nothing. Ctrl-C
stops (exit status 0), as does --stop-after.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from auditship.ondisk.lake_layout import PART
from auditship.query import location, output
from auditship.query.errors import QueryError
from auditship.query.filters import EventFilter
from auditship.query.lake import LakeReader, list_parts, partition_values
from auditship.query.rows import EventPrinter, Found, iter_events
from auditship.query.search import search_sql

INTERVAL_RANGE = (0.1, 60.0)


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "tail",
        parents=[common],
        help="the newest events; -f: and new ones as they land",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-n", "--lines", type=int, default=10, metavar="N", help="how many (default 10)")
    parser.add_argument("-f", "--follow", action="store_true", help="then print new events as they land")
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="S",
        help="how often to look when following (default 1)",
    )
    parser.add_argument("--stop-after", type=float, metavar="S", help="stop following after S seconds")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.lines < 0:
        raise QueryError(f"--lines: {args.lines} is negative")
    if not INTERVAL_RANGE[0] <= args.interval <= INTERVAL_RANGE[1]:
        raise QueryError(
            f"--interval: {args.interval} is not between {INTERVAL_RANGE[0]} and {INTERVAL_RANGE[1]}"
        )
    lake = location.resolve(args).lake
    printer = EventPrinter(output.chosen(args.output_format), sys.stdout)
    try:
        newest, read = _newest(lake, args.lines)
        printer.print(reversed(newest))
        if args.follow:
            _follow(lake, printer, read, args.interval, args.stop_after)
    except KeyboardInterrupt:
        pass  # what stops -f; the events printed so far are the output
    return 0


def _newest(lake: Path, count: int) -> tuple[list[Found], dict[Path, int]]:
    """The newest `count` events, and the highest WAL seq of every partition the reader listed.

    A partition's date is its events' (UTC) date, so the newest events are in the newest dates: read the
    newest day's parts, and twice as many days while those hold too few, not every part of the lake.
    """
    dates = sorted({part.parent.parent for part in list_parts(lake)}, reverse=True)
    days = 1
    while True:  # at most log2(len(dates)) + 2 times: the window doubles until it holds every date
        with LakeReader(lake, _in_dates(set(dates[:days]))) as reader:
            newest = list(iter_events(reader.execute(*search_sql(EventFilter(), count))))
            if len(newest) >= count or days >= len(dates):
                return newest, _high_water(reader.listed)
        days *= 2


def _in_dates(dates: set[Path]) -> Callable[[Path], bool]:
    return lambda part: part.parent.parent in dates


def _follow(
    lake: Path, printer: EventPrinter, read: dict[Path, int], interval: float, limit: float | None
) -> None:
    deadline = None if limit is None else time.monotonic() + limit
    while deadline is None or time.monotonic() < deadline:
        time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))
        with LakeReader(lake, lambda part: _range(part)[1] > read.get(part.parent, -1)) as reader:
            if not reader.parts:
                continue
            directories = sorted({part.parent for part in reader.parts})
            condition = " OR ".join(["(date = ? AND service = ? AND wal_seq > ?)"] * len(directories))
            params = [v for d in directories for v in (*partition_values(d), read.get(d, -1))]
            sql = f"SELECT * FROM events WHERE {condition} ORDER BY timestamp, wal_seq"  # noqa: S608
            new = list(iter_events(reader.execute(sql, params)))
            for directory, last in _high_water(reader.parts).items():
                read[directory] = max(last, read.get(directory, -1))
        printer.print(new)


def _range(part: Path) -> tuple[int, int]:
    match = PART.match(part.name)
    assert match is not None  # live_parts lists only names that match
    return int(match[1]), int(match[2])


def _high_water(parts: list[Path]) -> dict[Path, int]:
    """The highest WAL sequence number in each partition directory of `parts`."""
    highest: dict[Path, int] = {}
    for part in parts:
        highest[part.parent] = max(_range(part)[1], highest.get(part.parent, -1))
    return highest
