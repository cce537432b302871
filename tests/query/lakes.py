"""Lakes for the audit-query tests and `python -m bench query`, written with DuckDB in the Parquet sink's
layout (ondisk/lake_layout.py) and schema (agents/sinks/parquet/schema.py): every AuditEvent field and
`wal_seq` in the files, `date` and `service` in the Hive path. A whole lake is one COPY, so the bench
builds 10 million events in about a minute, and a test states its events without running an agent.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import duckdb
import msgspec

from auditship.agents.sinks.parquet.schema import COLUMNS
from auditship.ondisk.lake_layout import UNKNOWN_SERVICE, part_name, partition_dir
from shipper.event import AuditEvent


def connect() -> duckdb.DuckDBPyConnection:
    """A connection that reads and writes TIMESTAMPTZ in UTC, so `date=` is the UTC date."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def write_lake(con: duckdb.DuckDBPyConnection, rows_sql: str, lake: Path) -> list[Path]:
    """Write the rows of `rows_sql` (every column of COLUMNS, in WAL order) as one part per partition, as
    one flush of the sink would; returns the parts.

    DuckDB writes Hive-partitioned files to a staging directory beside the lake; each is then renamed into
    place under the part name of its WAL range, as the sink publishes a part.
    """
    staging = lake.parent / f".staging-{lake.name}"
    shutil.rmtree(staging, ignore_errors=True)
    columns = ", ".join(f'"{name}"' for name in COLUMNS)
    con.execute(
        f"""COPY (
                SELECT {columns}, strftime(timestamp, '%Y-%m-%d') AS date,
                       coalesce(service_name, ?) AS service
                FROM ({rows_sql})
            ) TO ? (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date, service))""",
        [UNKNOWN_SERVICE, str(staging)],
    )
    ranges = con.execute(
        """SELECT filename, any_value(date)::VARCHAR, any_value(service), min(wal_seq), max(wal_seq)
           FROM read_parquet(?, filename = true, hive_partitioning = true,
                             hive_types = {'date': VARCHAR, 'service': VARCHAR})
           GROUP BY filename""",
        [str(staging / "**" / "*.parquet")],
    ).fetchall()
    partitions = [(date, service) for _, date, service, _, _ in ranges]
    if len(set(partitions)) != len(partitions):  # their WAL ranges would overlap: not a lake's parts
        raise ValueError("DuckDB wrote a partition in several files")
    published = []
    for filename, date, service, first, last in ranges:
        directory = partition_dir(lake, date, None if service == UNKNOWN_SERVICE else service)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / part_name(first, last)
        Path(filename).rename(target)
        published.append(target)
    shutil.rmtree(staging)
    return published


def write_events(lake: Path, events: Iterable[tuple[int, AuditEvent]]) -> list[Path]:
    """Write (wal_seq, event) pairs to the lake: each batch so written is what one flush of the sink would
    publish, so a second call with later seqs adds parts beside the first call's."""
    rows = [msgspec.structs.asdict(event) | {"wal_seq": seq} for seq, event in events]
    lake.parent.mkdir(parents=True, exist_ok=True)
    source = lake.parent / f".rows-{lake.name}.jsonl"
    source.write_bytes(b"".join(msgspec.json.encode(row) + b"\n" for row in rows))
    con = connect()
    try:
        con.execute(
            "CREATE TEMP TABLE batch AS SELECT * FROM read_json(?, columns = ?)", [str(source), COLUMNS]
        )
        return write_lake(con, "SELECT * FROM batch", lake)
    finally:
        con.close()
        source.unlink()
