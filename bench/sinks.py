"""`python -m bench sinks`: throughput of each sink, and how fast a SIEM outage's backlog drains.

    sql      rows/s into SQLite (a file in a temporary directory), PostgreSQL and MariaDB (a table made
             for the run and dropped after; a server that does not answer is skipped, and said so),
             driven through the sink's own `write_batch` in batches of `sinks.sql.batch_size`, as its
             runner drives it; the median and the best of `--sql-rounds`, each into a new table, and
             the CPU time this process spent per row (the sink's own cost, steadier than the wall
             rate on a shared machine). Target: >= 150,000 rows/s into PostgreSQL.
    hec      the SIEM sink alone into a local HEC receiver (CPU per event, events/s), then events/s
             through a real agent                                          (bench/remote_sinks.py)
    bulk     the SIEM sink alone into a local Elasticsearch `_bulk`        (bench/remote_sinks.py)
    syslog   events/s into a real rsyslog, through a real agent           (bench/remote_sinks.py)
    outage   the time to drain a SIEM outage's backlog, vs the intake rate (bench/remote_sinks.py)

`--only` picks parts; each part's options are in its own group.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from auditship.agents.crypto import Keyring, encrypt_sensitive
from auditship.agents.sinks.base import Delivery, Entry
from auditship.agents.sinks.siem.config import SiemSinkConfig
from auditship.agents.sinks.sql.config import SqlSinkConfig
from shipper.event import AuditEvent, AuditEventType
from tests.services import tcp_reachable

PARTS = ("sql", "hec", "bulk", "syslog", "outage")
TARGET_POSTGRES_RATE = 150_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    sql = parser.add_argument_group("sql")
    sql.add_argument("--sql-events", type=int, default=100_000, help="per database and round")
    sql.add_argument("--sql-rounds", type=int, default=3, help="the median and the best are printed")
    sql.add_argument(
        "--sql-batch-size", type=int, default=SqlSinkConfig().batch_size, help="default: sinks.sql.batch_size"
    )
    sql.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    sql.add_argument("--mariadb", default="mysql+pymysql://root@127.0.0.1:3306/test")
    siem = parser.add_argument_group("hec, bulk, syslog, outage")
    siem.add_argument("--hec-events", type=int, default=200_000)
    siem.add_argument(
        "--hec-batch-sizes",
        type=int,
        nargs="+",
        default=sorted({50, SiemSinkConfig().batch_size}),
        help="sinks.siem.batch_size values to measure (hec and bulk)",
    )
    siem.add_argument("--syslog-events", type=int, default=100_000)
    siem.add_argument("--outage-s", type=float, default=60.0, help="how long the SIEM is down")
    siem.add_argument("--rate", type=int, default=2_000, help="events/s arriving during the outage")


def run(args: argparse.Namespace) -> None:
    if "sql" in args.only:
        servers = {"PostgreSQL": args.postgres, "MariaDB": args.mariadb}
        run_sql(args.sql_events, args.sql_batch_size, args.sql_rounds, servers)
    # The network parts need httpx, uvicorn and rsyslog's helpers: imported only when asked for.
    if {"hec", "bulk", "syslog", "outage"} & set(args.only):
        from bench import remote_sinks

        if "hec" in args.only:
            remote_sinks.sink_alone("splunk_hec", args.hec_events, args.hec_batch_sizes)
            remote_sinks.hec(args.hec_events, args.hec_batch_sizes)
        if "bulk" in args.only:
            remote_sinks.sink_alone("elasticsearch", args.hec_events, args.hec_batch_sizes)
        if "syslog" in args.only:
            remote_sinks.syslog(args.syslog_events)
        if "outage" in args.only:
            remote_sinks.outage(args.outage_s, args.rate)


# --- SQL --------------------------------------------------------------------------------------------


def sample_entries(count: int, keys: Path) -> list[Entry]:
    """Entries as a sink receives them: a typical data-access event, its one sensitive value already
    an envelope (the intake encrypts before the WAL)."""
    keyring = Keyring.load_or_create(keys)
    return [
        Entry(
            seq,
            encrypt_sensitive(
                AuditEvent(
                    event_type=AuditEventType.DATA_READ,
                    user_id=f"user{seq % 1000}",
                    source_ip="10.0.0.7",
                    resource_type="patient_record",
                    resource_id=str(seq),
                    service_name="records-api",
                    environment="production",
                    request_id=f"req-{seq}",
                    details={"n": seq, "fields": ["diagnosis", "treatment"]},
                    sensitive={"patient_name": "Jane Doe"},
                    compliance=["HIPAA"],
                ),
                keyring,
            ),
        )
        for seq in range(1, count + 1)
    ]


def run_sql(events: int, batch_size: int, rounds: int, servers: dict[str, str]) -> None:
    from sqlalchemy.engine import make_url

    root = Path(tempfile.mkdtemp(prefix="as-bench-sql-"))
    try:
        entries = sample_entries(events + batch_size, root / "keys")
        print(f"sql: {events:,} events in batches of {batch_size:,} (sinks.sql.batch_size), {rounds} rounds")
        for name, url in {"SQLite": f"sqlite:///{root / 'audit.db'}", **servers}.items():
            parsed = make_url(url)
            if parsed.host and not tcp_reachable(parsed.host, parsed.port or 0):
                print(f"  {name}: nothing answers at {parsed.host}:{parsed.port}; skipped")
                continue
            results = [_sql_round(url, root, entries, batch_size) for _ in range(rounds)]
            rates = [rate for rate, _, _ in results]
            cpu_us = statistics.median(cpu for _, cpu, _ in results)
            target = f" (target {TARGET_POSTGRES_RATE:,})" if name == "PostgreSQL" else ""
            print(
                f"  {name}: median {statistics.median(rates):,.0f} rows/s, best {max(rates):,.0f}{target}; "
                f"sink CPU {cpu_us:.1f} us/row; every event once: {all(once for _, _, once in results)}"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _sql_round(url: str, root: Path, entries: list[Entry], batch_size: int) -> tuple[float, float, bool]:
    """Rows/s of one round into a new table, the CPU microseconds this process spent per row, and
    whether the table then holds every event once."""
    from sqlalchemy import create_engine, text

    from auditship.agents.sinks.sql.sink import SqlSink

    table = f"bench_{uuid.uuid4().hex[:8]}"
    sink = SqlSink(SqlSinkConfig(enabled=True, url=url, table=table, batch_size=batch_size), root)
    sink.open()
    admin = create_engine(url)
    warm_up, timed = entries[:batch_size], entries[batch_size:]
    try:
        # The first batch creates the table; it is not timed.
        assert sink.write_batch(warm_up) is Delivery.DELIVERED
        started, cpu_started = time.perf_counter(), time.process_time()
        for start in range(0, len(timed), batch_size):
            outcome = sink.write_batch(timed[start : start + batch_size])
            assert outcome is Delivery.DELIVERED, outcome
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        with admin.connect() as connection:
            rows = connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    finally:
        sink.close()
        with admin.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
        admin.dispose()
    return len(timed) / elapsed, cpu * 1e6 / len(timed), rows == len(entries)
