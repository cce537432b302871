"""`audit-query verify`: check the agent's signed, chained digests against its files and its lake.

    audit-query verify [--data-dir DIR | --config FILE] [--keys-dir DIR] [--sink file|parquet|all]
                       [--since T] [--until T] [--public-key FILE] [--format text|json] [--verbose]

Every digest must be there (from the first to the one the run record in keys_dir names), signed by a
trusted key, and linked to the one before it; every object a digest lists must hash as listed, the
current file must begin with each prefix claimed of it, and the WAL seqs the sink wrote must all be in
its objects or declared (a hole the sink had no event for, a removal by retention, compaction, max_files
or the quarantine). --since and --until check only the objects whose digest was written in that range
(and then the lake's continuity is not checked); the digests are always checked whole.

Each object gets a verdict: valid, modified, missing, unexpected, reordered, signature invalid, chain
broken, sequence gap, or pending (written after the newest digest: not a failure). The exit status is 0
when everything is valid or pending, 1 otherwise, and 2 when verifying is impossible (no digests, no
public key, bad arguments).

On another machine, an auditor needs the data directory (or a copy of it) and the public key alone
(`audit-agent keys export-public`); without keys_dir's run record, the newest digests of a chain could
be gone unseen, which the report notes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec

from auditship.agents.config import default_keys_dir
from auditship.query import location
from auditship.query.timespec import time_range
from auditship.query.verify.report import write_text
from auditship.query.verify.run import verify

EXIT_NOT_VERIFIED = 1


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "verify",
        help="check the signed digests of the files and the lake: a verdict per object",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="the agent's data directory (default: $AUDITSHIP_DATA_DIR or ./auditship-data)",
    )
    where.add_argument("--config", type=Path, metavar="FILE", help="the agent's config file (agent.toml)")
    parser.add_argument(
        "--keys-dir",
        type=Path,
        metavar="DIR",
        help="the agent's keys_dir: its public keys and run records (default: the config's, else DIR-keys)",
    )
    parser.add_argument("--sink", choices=("file", "parquet", "all"), default="all")
    parser.add_argument(
        "--since", metavar="TIME", help="objects digested at or after: ISO 8601 or an age (7d)"
    )
    parser.add_argument("--until", metavar="TIME", help="objects digested before")
    parser.add_argument(
        "--public-key",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="trusted signing keys (PEM: the bundle `audit-agent keys export-public` writes, or one key); "
        "repeat for several",
    )
    parser.add_argument("--format", dest="report_format", choices=("text", "json"), default="text")
    parser.add_argument("--verbose", action="store_true", help="text: list the valid objects too")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    since, until = time_range(args.since, args.until)
    config = location.agent_config(args)
    data = args.data_dir.absolute() if args.data_dir is not None else config.data_path
    keys = args.keys_dir or (config.keys_path if args.config is not None else default_keys_dir(data))
    report = verify(
        data, keys, config=config, sink=args.sink, public_keys=args.public_key, since=since, until=until
    )
    if args.report_format == "json":
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        write_text(report, sys.stdout, verbose=args.verbose)
    return 0 if report.ok else EXIT_NOT_VERIFIED
