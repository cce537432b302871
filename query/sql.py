"""`audit-query sql`: any DuckDB SQL over the view `events`, which covers every live part of the lake.

Its columns are the AuditEvent fields (details, changes and sensitive as JSON, compliance a list, timestamp
a TIMESTAMPTZ in UTC), wal_seq, and date and service from the partition path: filtering on date or
service lets DuckDB skip whole partitions. `DESCRIBE events` lists them. For example:

    audit-query sql "SELECT service_name, count(*) FROM events WHERE date >= current_date - 7 GROUP BY ALL"
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from query import location, output
from query.lake import LakeReader

FETCH_ROWS = 10_000


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "sql",
        parents=[common],
        help="run SQL over the view `events`",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("query", metavar="SQL", help='the statement, e.g. "SELECT count(*) FROM events"')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with LakeReader(location.resolve(args).lake) as reader:
        cursor = reader.execute(args.query)
        description = cursor.description or ()
        columns = [column[0] for column in description]
        json_columns = frozenset(column[0] for column in description if str(column[1]) == "JSON")
        rows = (row for chunk in iter(lambda: cursor.fetchmany(FETCH_ROWS), []) for row in chunk)
        output.write_rows(columns, rows, output.chosen(args.format), sys.stdout, json_columns)
    return 0
