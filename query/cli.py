"""audit-query: read what the audit agent wrote.

Each command is a module of this package with `register(commands, common)`, which adds its parser
(inheriting the common options from `common`) and sets `run(args) -> int` as its default; `main`
parses, dispatches, and turns a QueryError into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from query import cat
from query.errors import QueryError

COMMANDS = (cat,)
EXIT_BAD_INPUT = 2


def default_data_dir() -> Path:
    return Path(os.environ.get("AUDITSHIP_DATA_DIR") or "./auditship-data")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        metavar="DIR",
        help="the agent's data directory (default: $AUDITSHIP_DATA_DIR or ./auditship-data)",
    )
    parser = argparse.ArgumentParser(prog="audit-query", description="Read what the audit agent wrote.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except QueryError as exc:
        sys.stdout.flush()
        print(f"audit-query: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # The reader (head, less) went away: not an error. Point stdout at /dev/null so that Python's
        # flush at exit does not fail on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status
