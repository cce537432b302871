"""Benchmarks against the baselines named in the issues, measured in the same run.

python -m bench emit     cost of one emit() vs stdlib logging (JSON to a file) vs the floor
python -m bench agent    sustained events/s through intake -> WAL -> file sink, and peak RSS
"""

from __future__ import annotations

import argparse
import sys

from bench import agent, emit


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    emit_parser = commands.add_parser("emit", help="cost of one emit() call")
    emit_parser.add_argument("--calls", type=int, default=200_000)
    agent_parser = commands.add_parser("agent", help="events/s through the agent")
    agent_parser.add_argument("--producers", type=int, default=4)
    agent_parser.add_argument("--events", type=int, default=250_000, help="per producer")
    args = parser.parse_args()
    if args.command == "emit":
        emit.run(args.calls)
    else:
        agent.run(args.producers, args.events)
    return 0


if __name__ == "__main__":
    sys.exit(main())
