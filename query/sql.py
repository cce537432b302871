"""`audit-query sql`: any DuckDB SQL over the view `events`, which covers every live part of the lake.

Its columns are the AuditEvent fields (details, changes and sensitive as JSON, compliance a list, timestamp
a TIMESTAMPTZ in UTC), wal_seq, and date and service from the partition path: filtering on date or
service lets DuckDB skip whole partitions. `DESCRIBE events` lists them. For example:

    audit-query sql "SELECT service_name, count(*) FROM events WHERE date >= current_date - 7 GROUP BY ALL"

It runs one read-only statement (SELECT, FROM, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN) in a sandbox: DuckDB
reads the lake's parts and no other file (not the keys beside it), writes nothing, installs and loads no
extension, and no statement can change that. An administrator who wants DuckDB unrestricted (COPY a result
out, ATTACH another database) passes --unsafe.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import duckdb

from auditship.query import location, output
from auditship.query.errors import QueryError
from auditship.query.lake import LakeReader, as_query_error

FETCH_ROWS = 10_000
READ_ONLY = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "sql",
        parents=[common],
        help="run SQL over the view `events`",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("query", metavar="SQL", help='the statement, e.g. "SELECT count(*) FROM events"')
    parser.add_argument(
        "--unsafe",
        action="store_true",
        help="DuckDB unrestricted: any statement, any file, extensions (for an administrator)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with LakeReader(location.resolve(args).lake, sandboxed=not args.unsafe) as reader:
        if not args.unsafe:
            _check_read_only(reader, args.query)
        cursor = reader.execute(args.query)
        description = cursor.description or ()
        columns = [column[0] for column in description]
        json_columns = frozenset(column[0] for column in description if str(column[1]) == "JSON")
        rows = (row for chunk in iter(lambda: cursor.fetchmany(FETCH_ROWS), []) for row in chunk)
        output.write_rows(columns, rows, output.chosen(args.output_format), sys.stdout, json_columns)
    return 0


def _check_read_only(reader: LakeReader, sql: str) -> None:
    try:
        statements = reader.connection.extract_statements(sql)
    except duckdb.Error as exc:
        raise as_query_error(exc) from exc
    kinds = [statement.type for statement in statements]
    if len(kinds) != 1 or kinds[0] not in READ_ONLY:
        shown = ", ".join(kind.name for kind in kinds) or "none"
        raise QueryError(
            "audit-query sql runs one read-only statement (SELECT, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN), got: "
            f"{shown}; --unsafe lifts this for an administrator"
        )
