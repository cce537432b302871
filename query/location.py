"""Where audit-query reads: a lake, an agent's data directory, or the agent's config file.

--lake DIR       the lake alone; `retention` then removes lake partitions only
--data-dir DIR   a data directory laid out as the agent's defaults: DIR/lake, DIR/files, DIR/rejects...
--config FILE    the agent's config: its data_dir, sinks.parquet.path and sinks.file.path
(none)           the data directory $AUDITSHIP_DATA_DIR, else ./auditship-data
"""

from __future__ import annotations

import argparse
from pathlib import Path

from auditship.agents.config import AgentConfig, load_config
from auditship.agents.errors import ConfigError
from auditship.agents.retention import Location
from auditship.query.errors import QueryError


def add_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--lake", type=Path, metavar="DIR", help="the lake's directory")
    where.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="the agent's data directory (default: $AUDITSHIP_DATA_DIR or ./auditship-data)",
    )
    where.add_argument("--config", type=Path, metavar="FILE", help="the agent's config file (agent.toml)")


def agent_config(args: argparse.Namespace) -> AgentConfig:
    """The config file of --config, else the defaults."""
    try:
        return load_config(args.config)
    except ConfigError as exc:
        raise QueryError(str(exc)) from exc


def resolve(args: argparse.Namespace) -> Location:
    if args.lake is not None:
        return Location(args.lake)
    if args.data_dir is not None:
        return Location.of_data_dir(args.data_dir)
    config = agent_config(args)
    # data_path: $AUDITSHIP_DATA_DIR, else the config's data_dir (the default's is ./auditship-data).
    return Location.of_data_dir(config.data_path, config)
