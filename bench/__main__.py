"""Benchmarks against the baselines named in the issues, measured in the same run.

python -m bench emit     cost of one emit() vs stdlib logging (JSON to a file) vs the floor
                         (--ack: acknowledged emits/s and latency with 1, 8 and 64 concurrent callers)
python -m bench agent    sustained events/s through intake -> WAL -> file sink (--with-lake: and the lake;
                         --services N: over N services; --rsyslog: rsyslog beside it), and peak RSS
python -m bench middleware  requests/s of Starlette and gRPC servers with and without the audit middleware
                            (--instructions: instructions per HTTP request instead, under callgrind,
                            beside the peers: asgi-correlation-id, structlog, Prometheus, OpenTelemetry...)
python -m bench query    audit-query's search, stats and SQL over a lake vs scanning zstd JSON Lines
python -m bench sinks    events/s into each sink's destination; the drain of a SIEM outage's backlog
python -m bench detect   precision and recall of the detection rules on a labelled month, streaming and
                         over the lake; alert latency; the detector's events/s; its memory with 1M keys
python -m bench idle     CPU an agent with nothing to do takes, per process
python -m bench cost     CPU per event of the agent (file sink alone, defaults) beside rsyslog's, paced
python -m bench verify   MB/s of files and lake that audit-query verify checks (digests, hashes, continuity)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import ack, agent, apps, cost, detect, emit, idle, instructions, middleware, query, sinks, verify


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    emit_parser = commands.add_parser("emit", help="cost of one emit() call")
    emit_parser.add_argument("--calls", type=int, default=200_000)
    emit_parser.add_argument("--ack", action="store_true", help="acknowledged emits with concurrent callers")
    emit_parser.add_argument("--seconds", type=float, default=3.0, help="per row of --ack")
    emit_parser.add_argument(
        "--fsync-ms",
        type=float,
        default=2.0,
        help="--ack: what an fsync of the WAL takes (0: the plain disk)",
    )
    agent_parser = commands.add_parser("agent", help="events/s through the agent")
    agent_parser.add_argument("--producers", type=int, default=4)
    agent_parser.add_argument("--events", type=int, default=250_000, help="per producer")
    agent_parser.add_argument("--with-lake", action="store_true", help="run the Parquet sink too")
    agent_parser.add_argument("--services", type=int, default=1, help="service names the events spread over")
    agent_parser.add_argument("--rsyslog", action="store_true", help="rsyslog beside it, same events")
    middleware_parser = commands.add_parser("middleware", help="requests/s with and without the middleware")
    middleware_parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    middleware_parser.add_argument("--rounds", type=int, default=3, help="of each, plain and audited")
    middleware_parser.add_argument("--connections", type=int, default=16, help="or gRPC calls in flight")
    servers = list(middleware.SERVERS)
    middleware_parser.add_argument("--only", nargs="+", choices=servers, default=servers)
    middleware_parser.add_argument(
        "--instructions",
        action="store_true",
        help="instructions per HTTP request, under valgrind's callgrind, beside the peers",
    )
    middleware_parser.add_argument(
        "--stacks", nargs="+", choices=apps.STACKS, help="with --instructions: these stacks only"
    )
    middleware_parser.add_argument(
        "--apps", nargs="+", choices=list(apps.APPS), help="with --instructions: these apps only"
    )
    query_parser = commands.add_parser("query", help="audit-query vs scanning zstd JSON Lines")
    query_parser.add_argument("--events", type=int, default=10_000_000)
    query_parser.add_argument("--dir", type=Path, help="build here and keep (default: a temporary directory)")
    sinks.add_arguments(commands.add_parser("sinks", help="events/s into each sink's destination"))
    detect_parser = commands.add_parser("detect", help="the detection rules on a labelled synthetic month")
    detect_parser.add_argument("--users", type=int, default=5_000)
    detect_parser.add_argument("--incidents", type=int, default=5, help="of each kind")
    detect_parser.add_argument("--latency-alerts", type=int, default=10)
    detect_parser.add_argument("--memory-keys", type=int, default=1_000_000)
    idle_parser = commands.add_parser("idle", help="CPU of an agent with nothing to do")
    idle_parser.add_argument("--seconds", type=float, default=30.0)
    cost_parser = commands.add_parser("cost", help="CPU per event beside rsyslog, at a paced rate")
    cost_parser.add_argument("--rate", type=int, default=5_000, help="events/s")
    cost_parser.add_argument("--seconds", type=float, default=10.0, help="of load, for each receiver")
    cost_parser.add_argument("--idle-seconds", type=float, default=10.0, help="quiet stretch before the load")
    verify_parser = commands.add_parser("verify", help="MB/s that audit-query verify checks")
    verify_parser.add_argument("--events", type=int, default=2_000_000)
    verify_parser.add_argument("--rounds", type=int, default=3, help="of each, warm and cold")
    verify_parser.add_argument(
        "--dir", type=Path, help="write here and keep (default: a temporary directory)"
    )
    args = parser.parse_args()
    if args.command == "emit" and args.ack:
        ack.run(args.seconds, args.fsync_ms)
    elif args.command == "emit":
        emit.run(args.calls)
    elif args.command == "middleware" and args.instructions:
        instructions.run(args.stacks, args.apps)
    elif args.command == "middleware":
        middleware.run(args)
    elif args.command == "query":
        query.run(args.events, args.dir)
    elif args.command == "sinks":
        sinks.run(args)
    elif args.command == "detect":
        detect.run(args.users, args.incidents, args.latency_alerts, args.memory_keys)
    elif args.command == "idle":
        idle.run(args.seconds)
    elif args.command == "cost":
        cost.run(args.rate, args.seconds, args.idle_seconds)
    elif args.command == "verify":
        verify.run(args.events, args.rounds, args.dir)
    else:
        lake, services, rsyslog = args.with_lake, args.services, args.rsyslog
        agent.run(args.producers, args.events, with_lake=lake, services=services, rsyslog=rsyslog)
    return 0


if __name__ == "__main__":
    sys.exit(main())
