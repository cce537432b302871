"""audit-query against the baseline a user has without it: the same events as zstd JSON Lines, scanned with
Python (msgspec + zstandard streaming).

The events are generated in SQL by DuckDB (a realistic mix: 5,000 users, 50 services, 30 days ending now,
1% auth failures, API calls with status codes, data operations on resources, a few security findings), then
written twice from the same table: as the lake (one part per day and service, as after compaction) and as
the file sink's closed files (`audit-<first>-<last>.jsonl.zst`, 100 MiB of JSON before compression, the
sink's own record shape: defaults omitted, `wal_seq` last).

Timed in one run, each query answered both ways and the answers compared:
  search --user X --since 7d    the newest 100 events of one user
  stats --since 7d              totals, counts by type/outcome/severity/service, security, errors, per hour
  sql GROUP BY                  events by service and type over all 30 days

Then freshness, through a real agent with its default config: the time from emit() to the event being
found by a search (the target: within the Parquet sink's flush_interval_s and a second).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any, TypeVar

import duckdb
import msgspec
import zstandard

from auditship.agents.retention import Location
from auditship.ondisk.file_sink import closed_name
from auditship.ondisk.lake_layout import UNKNOWN_SERVICE, live_parts
from auditship.query.errors import QueryError
from auditship.query.filters import EventFilter
from auditship.query.lake import LakeReader
from auditship.query.search import search
from auditship.query.stats import Statistics, hour_key, is_security, statistics
from bench.harness import running_agent
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType
from tests.query.lakes import connect, write_lake

T = TypeVar("T")
USERS, SERVICES, DAYS = 5_000, 50, 30
SEARCHED_USER = "user-0042"
FILE_BYTES = 100 * 1024 * 1024  # the file sink's default max_file_size
GROUP_BY = (
    "SELECT service_name, event_type, count(*) AS events FROM events GROUP BY ALL ORDER BY events DESC, 1, 2"
)

# One row per event: what each column is, from a few hashes of the event number `i`. `b` picks the kind of
# event per mille: 1% auth failures, logins, API calls (3% of them 4xx, 1% 5xx), data operations, access
# checks, a little of everything else.
EVENTS_SQL = """
WITH base AS (
  SELECT i,
    $start + to_microseconds((i * ($span_us // $n))::BIGINT) AS ts,
    (hash(i, 'user') % $users)::BIGINT AS u, (hash(i, 'service') % $services)::BIGINT AS s,
    (hash(i, 'kind') % 1000)::BIGINT AS b, (hash(i, 'detail') % 1000)::BIGINT AS x
  FROM range($n) r(i)
), kind AS (
  SELECT *,
    CASE WHEN b < 10 THEN 'auth_failure' WHEN b < 90 THEN 'user_login' WHEN b < 120 THEN 'user_logout'
         WHEN b < 500 THEN 'api_request' WHEN b < 700 THEN 'data_read' WHEN b < 780 THEN 'data_update'
         WHEN b < 810 THEN 'data_create' WHEN b < 820 THEN 'data_delete' WHEN b < 830 THEN 'data_export'
         WHEN b < 900 THEN 'access_granted' WHEN b < 910 THEN 'access_denied'
         WHEN b < 950 THEN 'permission_check' WHEN b < 960 THEN 'transaction' WHEN b < 970 THEN 'workflow'
         WHEN b < 980 THEN 'configuration_change' WHEN b < 990 THEN 'heartbeat'
         WHEN b < 995 THEN 'rate_limit_exceeded' WHEN b < 998 THEN 'suspicious_activity'
         ELSE 'security_violation' END AS event_type,
    CASE WHEN b >= 120 AND b < 500 THEN
      CASE WHEN x < 960 THEN 200 WHEN x < 975 THEN 404 WHEN x < 985 THEN 403 WHEN x < 990 THEN 401
           ELSE 500 END END AS status_code,
    ['/api/v1/orders', '/api/v1/users', '/api/v1/payments', '/api/v1/reports', '/health'][1 + x % 5]
      AS endpoint,
    ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE'][1 + x % 6] AS method
  FROM base
), shaped AS (
  SELECT *,
    CASE WHEN event_type IN ('auth_failure', 'access_denied') THEN 'failure'
         WHEN event_type IN ('rate_limit_exceeded', 'suspicious_activity', 'security_violation')
           THEN 'failure'
         WHEN status_code >= 500 THEN 'error' WHEN status_code >= 400 THEN 'failure'
         ELSE 'success' END AS outcome,
    event_type LIKE 'data_%' AS is_data
  FROM kind
)
SELECT
  printf('%012x%010x%010x', epoch_ms(ts), s * 7919 + 1, i) AS event_id,
  ts AS timestamp,
  event_type,
  CASE WHEN event_type = 'security_violation' THEN 'critical'
       WHEN event_type = 'suspicious_activity' OR outcome = 'error' THEN 'high'
       WHEN outcome = 'failure' AND (status_code IS NULL OR status_code IN (401, 403)) THEN 'medium'
       WHEN outcome = 'failure' THEN 'low' ELSE 'info' END AS severity,
  outcome,
  CASE WHEN status_code IS NOT NULL THEN method || ' ' || endpoint || ' ' || status_code
       WHEN is_data THEN replace(event_type, 'data_', '') || ' record/' || (x * 31 + u)
       ELSE event_type || ' ' || outcome END AS message,
  CASE WHEN status_code IS NOT NULL THEN method || ' ' || endpoint
       WHEN is_data THEN replace(event_type, 'data_', '') ELSE event_type END AS action,
  printf('user-%04d', u) AS user_id,
  printf('s-%08x', hash(u, i // 5000) % 4294967296) AS session_id,
  printf('10.%d.%d.%d', u // 256 % 256, u % 256, 1 + u % 7) AS source_ip,
  ['Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0', 'Mozilla/5.0 (Macintosh) Safari/605.1.15',
   'python-httpx/0.27.0', 'okhttp/4.12.0'][1 + u % 4] AS user_agent,
  CASE WHEN is_data THEN ['record', 'invoice', 'patient_record', 'document'][1 + x % 4] END
    AS resource_type,
  CASE WHEN is_data THEN (x * 31 + u)::VARCHAR END AS resource_id,
  printf('svc-%02d', s) AS service_name,
  printf('1.%d.0', s % 5) AS service_version,
  'production' AS environment,
  printf('node-%02d', hash(i, 'node') % 20) AS node_id,
  printf('%016x', hash(i, 'correlation')) AS correlation_id,
  printf('%016x', hash(i, 'request')) AS request_id,
  printf('%032x', hash(i, 'trace')) AS trace_id,
  printf('%016x', hash(i, 'span')) AS span_id,
  CASE WHEN status_code IS NOT NULL THEN method END AS method,
  CASE WHEN status_code IS NOT NULL THEN endpoint END AS endpoint,
  status_code,
  CASE WHEN status_code IS NOT NULL THEN round(2 + (x * 7 % 400) / 3.0, 2) END AS duration_ms,
  CASE WHEN status_code IS NOT NULL THEN 200 + x * 3 END AS request_size,
  CASE WHEN status_code IS NOT NULL THEN 500 + x * 11 END AS response_size,
  CASE WHEN event_type IN ('user_login', 'auth_failure')
         THEN json_object('method', 'password', 'mfa', x % 3 = 0)
       WHEN is_data THEN json_object('rows', 1 + x % 50)
       ELSE '{}' END::JSON AS details,
  CASE WHEN event_type = 'data_update' THEN json_object('status', 'approved') ELSE '{}' END::JSON AS changes,
  '{}'::JSON AS sensitive,
  CASE WHEN s % 3 = 0 THEN ['SOX', 'GDPR'] WHEN s % 3 = 1 THEN ['HIPAA'] ELSE [] END::VARCHAR[] AS compliance,
  1 AS schema_version,
  i + 1 AS wal_seq
FROM shaped
"""

# The file sink's record: the event as msgspec encodes it with omit_defaults (None, empty maps, INFO,
# SUCCESS, schema_version 1 left out), then `wal_seq`. json_object writes None as null; the regex removes
# those members (every one follows another member: event_type is always there and first).
JSON_LINE_SQL = r"""
SELECT regexp_replace(json_object(
  'event_type', event_type, 'event_id', event_id,
  'timestamp', strftime(timestamp, '%Y-%m-%dT%H:%M:%S.%fZ'),
  'severity', nullif(severity, 'info'), 'outcome', nullif(outcome, 'success'),
  'message', message, 'action', action, 'user_id', user_id, 'session_id', session_id,
  'source_ip', source_ip, 'user_agent', user_agent, 'resource_type', resource_type,
  'resource_id', resource_id, 'service_name', service_name, 'service_version', service_version,
  'environment', environment, 'node_id', node_id, 'correlation_id', correlation_id,
  'request_id', request_id, 'trace_id', trace_id, 'span_id', span_id, 'method', method,
  'endpoint', endpoint, 'status_code', status_code, 'duration_ms', duration_ms,
  'request_size', request_size, 'response_size', response_size,
  'details', nullif(details::VARCHAR, '{}')::JSON, 'changes', nullif(changes::VARCHAR, '{}')::JSON,
  'compliance', nullif(compliance, []), 'wal_seq', wal_seq
)::VARCHAR, ',"[a-z_]+":null', '', 'g') AS line
FROM generated ORDER BY wal_seq
"""


def generate(con: duckdb.DuckDBPyConnection, events: int, end: datetime) -> None:
    start = end - timedelta(days=DAYS)
    con.execute(
        f"CREATE TABLE generated AS {EVENTS_SQL}",
        {
            "start": start,
            "span_us": DAYS * 86_400_000_000,
            "n": events,
            "users": USERS,
            "services": SERVICES,
        },
    )


def write_json_lines(con: duckdb.DuckDBPyConnection, directory: Path) -> list[Path]:
    """The file sink's closed files: rotated after 100 MiB of JSON, zstd level 3, named by WAL range."""
    directory.mkdir(parents=True)
    cursor = con.execute(JSON_LINE_SQL)
    compressor = zstandard.ZstdCompressor(level=3)
    files: list[Path] = []
    pending: list[bytes] = []
    size, seq = 0, 0

    def close_file() -> None:
        path = directory / (closed_name("audit", seq - len(pending) + 1, seq, "json") + ".zst")
        path.write_bytes(compressor.compress(b"".join(pending)))
        files.append(path)
        pending.clear()

    while rows := cursor.fetchmany(100_000):
        for (line,) in rows:
            record = line.encode() + b"\n"
            pending.append(record)
            size += len(record)
            seq += 1
            if size >= FILE_BYTES:
                close_file()
                size = 0
    if pending:
        close_file()
    return files


# --- the baseline: what a user writes without audit-query ---------------------------------------------


def json_lines(files: list[Path]) -> Iterator[bytes]:
    for path in files:
        with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as reader:
            yield from io.BufferedReader(reader, 1 << 20)  # type: ignore[arg-type]


class _UserRow(msgspec.Struct):
    timestamp: datetime
    user_id: str | None = None


class _StatsRow(msgspec.Struct):
    timestamp: datetime
    event_type: str
    severity: str = "info"
    outcome: str = "success"
    service_name: str | None = None
    status_code: int | None = None


class _GroupRow(msgspec.Struct):
    event_type: str
    service_name: str | None = None


def baseline_search(files: list[Path], user: str, since: datetime, limit: int) -> list[AuditEvent]:
    decode = msgspec.json.Decoder(_UserRow).decode
    hits = []
    for line in json_lines(files):
        row = decode(line)
        if row.user_id == user and row.timestamp >= since:
            hits.append((row.timestamp, line))
    hits.sort(key=lambda hit: hit[0], reverse=True)
    event = msgspec.json.Decoder(AuditEvent).decode
    return [event(line) for _, line in hits[:limit]]


def baseline_stats(files: list[Path], since: datetime) -> dict[str, Any]:
    decode = msgspec.json.Decoder(_StatsRow).decode
    types: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    severities: Counter[str] = Counter()
    services: Counter[str] = Counter()
    hours: Counter[str] = Counter()
    security = 0
    for line in json_lines(files):
        row = decode(line)
        if row.timestamp < since:
            continue
        types[row.event_type] += 1
        outcomes[row.outcome] += 1
        severities[row.severity] += 1
        services[row.service_name or UNKNOWN_SERVICE] += 1
        hours[hour_key(row.timestamp)] += 1
        security += is_security(row.event_type, row.outcome, row.status_code)
    return {
        "total_events": sum(types.values()),
        "security_events": security,
        "error_events": outcomes["error"],
        "event_counts": dict(types),
        "outcome_counts": dict(outcomes),
        "severity_counts": dict(severities),
        "service_counts": dict(services),
        "hourly_counts": dict(sorted(hours.items())),
    }


def baseline_group_by(files: list[Path]) -> list[tuple[str | None, str, int]]:
    decode = msgspec.json.Decoder(_GroupRow).decode
    counts: Counter[tuple[str | None, str]] = Counter()
    for line in json_lines(files):
        row = decode(line)
        counts[row.service_name, row.event_type] += 1
    return sorted(((s, t, n) for (s, t), n in counts.items()), key=lambda r: (-r[2], r[0] or "", r[1]))


# --- the run ------------------------------------------------------------------------------------------------


def timed(work: Callable[[], T], repeat: int) -> tuple[float, T]:
    """The median wall time of `repeat` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    assert result is not None
    return median(times), result


def group_by(lake: Path) -> list[tuple[Any, ...]]:
    with LakeReader(lake) as reader:
        return reader.execute(GROUP_BY).fetchall()


def comparable_stats(stats: Statistics) -> dict[str, Any]:
    return {key: value for key, value in stats.items() if key not in ("start", "end")}


def cli_wall_time(lake: Path, *args: str) -> float:
    """One `audit-query` process, start to exit: interpreter, imports, listing, query, output."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "auditship.query", *args, "--lake", str(lake), "--format", "json"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def freshness(rounds: int) -> tuple[list[float], float]:
    """Seconds from emit() to `search` finding the event, once per round; and the sink's flush interval."""
    with running_agent() as (config, _agent):
        lake = Location.of_data_dir(config.data_path, config).lake
        emitter = Emitter()
        # Connected first: an event emitted before the intake listens waits in the emitter's overflow for
        # the spool, which is the emitter's latency (and its own benchmark's), not the lake's.
        deadline = time.monotonic() + 60
        while not emitter.stats.confirmed and time.monotonic() < deadline:
            emitter.emit(AuditEvent(event_type=AuditEventType.HEARTBEAT))
            emitter.flush(timeout=0.5)
            time.sleep(0.1)
        latencies = []
        for round_number in range(rounds):
            wanted = EventFilter(user_id=f"freshness-{round_number}")
            started = time.perf_counter()
            emitter.emit(AuditEvent(event_type=AuditEventType.HEARTBEAT, user_id=wanted.user_id))
            deadline = started + 60
            while time.perf_counter() < deadline and not _found(lake, wanted):
                time.sleep(0.02)
            latencies.append(time.perf_counter() - started)
        emitter.close()
    return latencies, config.sinks.parquet.flush_interval_s


def _found(lake: Path, wanted: EventFilter) -> bool:
    try:
        return bool(search(lake, wanted, limit=1))
    except QueryError:  # no lake, or no part yet
        return False


def run(events: int, keep: Path | None) -> None:
    root = keep or Path(tempfile.mkdtemp(prefix="as-bench-query-", dir="/tmp"))
    lake, files_dir = root / "lake", root / "files"
    for path in (lake, files_dir):
        shutil.rmtree(path, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    end = datetime.now(UTC).replace(microsecond=0)
    try:
        con = connect()
        started = time.perf_counter()
        generate(con, events, end)
        generated = time.perf_counter() - started
        started = time.perf_counter()
        parts = write_lake(con, "SELECT * FROM generated", lake)
        lake_s = time.perf_counter() - started
        started = time.perf_counter()
        files = write_json_lines(con, files_dir)
        files_s = time.perf_counter() - started
        con.close()
        lake_bytes = sum(part.stat().st_size for part in live_parts(lake))
        files_bytes = sum(path.stat().st_size for path in files)
        print(
            f"{events:,} events: {USERS:,} users, {SERVICES} services, {DAYS} days to {end:%Y-%m-%d %H:%M}Z"
        )
        print(f"generated in {generated:.1f}s; lake written in {lake_s:.1f}s; JSON Lines in {files_s:.1f}s")
        print(
            f"on disk: lake {lake_bytes / 2**20:,.0f} MiB in {len(parts)} parts = "
            f"{lake_bytes / events:.1f} bytes/event; zstd JSON Lines {files_bytes / 2**20:,.0f} MiB in "
            f"{len(files)} files = {files_bytes / events:.1f} bytes/event"
        )

        since = datetime.now(UTC) - timedelta(days=7)
        wanted = EventFilter(user_id=SEARCHED_USER, start=since)
        ours_search, found = timed(lambda: search(lake, wanted, limit=100), 5)
        ours_stats, stats = timed(lambda: statistics(lake, start=since), 5)
        ours_sql, grouped = timed(lambda: group_by(lake), 5)
        cli_search = cli_wall_time(lake, "search", "--user", SEARCHED_USER, "--since", "7d")

        base_search, base_found = timed(lambda: baseline_search(files, SEARCHED_USER, since, 100), 1)
        base_stats, base_stats_result = timed(lambda: baseline_stats(files, since), 1)
        base_sql, base_grouped = timed(lambda: baseline_group_by(files), 1)

        assert [event.event_id for _, event in found] == [event.event_id for event in base_found]
        assert comparable_stats(stats) == base_stats_result, "statistics differ from the baseline's"
        assert [tuple(row) for row in grouped] == base_grouped, "the group-by differs from the baseline's"
        print(f"answers agree: {len(found)} events of {SEARCHED_USER}; {stats['total_events']:,} in 7 days")
        print()
        print(f"{'query':<35} {'audit-query':>12} {'baseline':>10} {'speed-up':>9}  target")
        for name, ours, base, target in (
            (f"search --user {SEARCHED_USER} --since 7d", ours_search, base_search, 0.5),
            ("stats --since 7d", ours_stats, base_stats, 1.0),
            ("sql group by service, type", ours_sql, base_sql, None),
        ):
            goal = "" if target is None else f"<= {target}s and >= 20x: "
            met = "" if target is None else ("met" if ours <= target and base / ours >= 20 else "MISSED")
            print(f"{name:<35} {ours:>11.3f}s {base:>9.1f}s {base / ours:>8.0f}x  {goal}{met}")
        print(
            "(audit-query: the median of 5 runs in this process; "
            f"the search as a whole audit-query process: {cli_search:.2f}s; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
        )
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    latencies, flush_interval = freshness(rounds=5)
    print(
        f"freshness, emit() to found by search, 5 rounds: median {median(latencies):.2f}s, "
        f"worst {max(latencies):.2f}s (target: flush_interval_s {flush_interval:g} + 1 s = "
        f"{flush_interval + 1:g}s: {'met' if max(latencies) <= flush_interval + 1 else 'MISSED'})"
    )
