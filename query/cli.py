"""audit-query: read what the audit agent wrote.

Each command is a module of this package with `register(commands, common)`, which adds its parser
(inheriting the common options from `common`) and sets `run(args) -> int` as its default; `main`
parses, dispatches, and turns a QueryError into one line on stderr and exit status 2. `cat` reads the
file sink's files (--data-dir); `verify` the digests, files and lake of a data directory (verify/); the
others read the lake (--lake, --data-dir or --config, and --format).
Usage errors are one line too, with the same status.

What a command leaves out because it cannot read it (a damaged part of the lake, a damaged file of the
file sink) is a warning through the `auditship.query` logger, as in the Python API; here each one goes to
stderr, once, and the command, having printed everything else, exits with status 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from auditship.ondisk.data_layout import data_dir
from auditship.query import (
    anomalies,
    cat,
    location,
    output,
    report,
    retention,
    search,
    sql,
    stats,
    subject,
    tail,
)
from auditship.query.errors import QueryError
from auditship.query.verify import command as verify

FILE_COMMANDS = (cat,)
LAKE_COMMANDS = (search, stats, sql, tail, anomalies, retention, subject)
EXIT_INCOMPLETE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse prints its usage before the error; here the error is the one line, naming the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    files = _Parser(add_help=False)
    files.add_argument(
        "--data-dir",
        type=Path,
        default=data_dir(),
        metavar="DIR",
        help="the agent's data directory (default: $AUDITSHIP_DATA_DIR or ./auditship-data)",
    )
    lake = _Parser(add_help=False)
    location.add_options(lake)
    output.add_option(lake)
    parser = _Parser(prog="audit-query", description="Read what the audit agent wrote.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in FILE_COMMANDS:
        command.register(commands, files)
    for command in LAKE_COMMANDS:
        command.register(commands, lake)
    # report has formats of its own (markdown), so the lake's options without --format.
    where = _Parser(add_help=False)
    location.add_options(where)
    report.register(commands, where)
    verify.register(commands)
    return parser


class _Warnings(logging.Handler):
    """Each distinct warning once on stderr (`tail -f` may meet the same damaged part at every look)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.seen:
            self.seen.add(message)
            print(f"audit-query: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings = _Warnings()
    logger = logging.getLogger("auditship.query")
    logger.addHandler(warnings)
    try:
        status = _run(args)
    finally:
        logger.removeHandler(warnings)
    return EXIT_INCOMPLETE if status == 0 and warnings.seen else status


def _run(args: argparse.Namespace) -> int:
    try:
        status: int = args.run(args)
        # Short output waits in stdout's buffer: a reader gone already shows only when it is flushed.
        sys.stdout.flush()
    except QueryError as exc:
        sys.stdout.flush()
        print(f"audit-query: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (head, less) went away: not an error. Point stdout at /dev/null so that Python's
        # flush at exit does not fail on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status
