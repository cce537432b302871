"""`python -m bench detect`: the detection rules over a labelled synthetic month (bench/detect_month.py),
on both paths, against the issue's targets.

    precision and recall per rule, streaming (the Detector, as the detect worker runs it, over the
      month's events as WAL records in time order) and over the lake (`audit-query anomalies` over the
      same events written as a lake). An alert is right when its rule is one the incident it falls in
      was labelled with, under the labelled key; an incident is found when such an alert falls in it.
    throughput: events/s through the Detector (decoding each record and every rule), the month's mix.
      Target: >= 100,000 events/s.
    alert latency: through a real agent with its default config, from the emit() of the failure that
      completes a brute force to the alert in the file sink's file. Target: within 5 s.
    memory with 1M distinct keys: a fresh process feeds the Detector a million events, each of another
      user, address and resource; its RSS before and after, the keys held, and the saved state's size.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import msgspec

from auditship.agents.detect.config import DetectConfig
from auditship.agents.detect.engine import Detector
from auditship.agents.sinks.parquet.schema import COLUMNS
from auditship.query.anomalies import anomalies
from bench.detect_month import LISTED, Incident, Month
from bench.harness import running_agent
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType, AuditOutcome
from shipper.wire import Frame, frame_encoder
from tests.agentproc import file_events
from tests.query.lakes import connect, write_lake

Alert = tuple[str, dict[str, str], datetime]
"""(rule, key, the time of the completing event)."""


def run(users: int, per_kind: int, latency_alerts: int, memory_keys: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-detect-") as scratch:
        root = Path(scratch)
        config = _config(root)
        print(f"a month of {users:,} users' events with {per_kind} incidents of each kind ...", flush=True)
        month = Month(users, per_kind)
        stream, events, seconds = _stream(month, config, root / "rows.jsonl")
        print(f"  {events:,} events; the Detector took {seconds:.1f}s: {events / seconds:,.0f} events/s")
        started = time.perf_counter()
        _write_lake(root / "rows.jsonl", root / "lake")
        written = time.perf_counter() - started
        started = time.perf_counter()
        lake = [
            (a["rule"], a["key"], datetime.fromisoformat(a["window_end"]))
            for a in anomalies(root / "lake", config)
        ]
        queried = time.perf_counter() - started
        print(f"  lake written in {written:.0f}s; audit-query anomalies took {queried:.1f}s")
        _print_scores(month.incidents, stream, lake)
    _print_latency(latency_alerts)
    for max_keys in (DetectConfig().max_keys, 100_000):
        _print_memory(memory_keys, max_keys)


def _config(root: Path) -> DetectConfig:
    (root / "deny.txt").write_text(f"{LISTED}\n")
    config = DetectConfig()
    config.denied_address.deny_list = str(root / "deny.txt")
    return config


def _stream(month: Month, config: DetectConfig, rows_path: Path) -> tuple[list[Alert], int, float]:
    """The month through a Detector, a day at a time; each day's rows appended for the lake."""
    detector = Detector(config)
    found: list[Alert] = []
    lsn, seconds = 0, 0.0
    with rows_path.open("wb") as rows:
        for day in month.days():
            first = lsn + 1
            frames = [
                frame_encoder.encode(Frame("bench", first + n, 0, event)) for n, event in enumerate(day)
            ]
            started = time.perf_counter()
            for frame in frames:
                lsn += 1
                for rule, finding in detector.take(lsn, frame):
                    found.append((rule.name, finding.key, finding.window_end))
            seconds += time.perf_counter() - started
            rows.write(b"".join(_row(seq, event) for seq, event in enumerate(day, first)))
    return found, lsn, seconds


def _row(seq: int, event: AuditEvent) -> bytes:
    return msgspec.json.encode(msgspec.structs.asdict(event) | {"wal_seq": seq}) + b"\n"


def _write_lake(rows: Path, lake: Path) -> None:
    con = connect()
    try:
        con.execute(
            "CREATE TEMP TABLE month AS SELECT * FROM read_json(?, columns = ?)", [str(rows), COLUMNS]
        )
        write_lake(con, "SELECT * FROM month ORDER BY wal_seq", lake)
    finally:
        con.close()


def _scores(incidents: list[Incident], alerts: Iterable[Alert]) -> dict[str, tuple[int, int, int, int]]:
    """Per rule: (right alerts, alerts, incidents found, incidents labelled with it)."""
    right: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    found: set[tuple[str, int]] = set()
    for rule, key, at in alerts:
        total[rule] += 1
        for number, incident in enumerate(incidents):
            if incident.expected.get(rule) == key and incident.start <= at <= incident.end:
                right[rule] += 1
                found.add((rule, number))
                break
    labelled: dict[str, int] = defaultdict(int)
    for incident in incidents:
        for rule in incident.expected:
            labelled[rule] += 1
    rules = sorted(set(total) | set(labelled))
    return {
        rule: (right[rule], total[rule], sum(r == rule for r, _ in found), labelled[rule]) for rule in rules
    }


def _print_scores(incidents: list[Incident], stream: list[Alert], lake: list[Alert]) -> None:
    print(f"\n{'rule':<24}{'streaming precision':>21}{'recall':>10}{'lake precision':>17}{'recall':>10}")
    stream_scores, lake_scores = _scores(incidents, stream), _scores(incidents, lake)
    for rule in sorted(set(stream_scores) | set(lake_scores)):
        cells = []
        for scores in (stream_scores, lake_scores):
            right, total, found, labelled = scores.get(rule, (0, 0, 0, 0))
            precision = f"{right / total:.2f} ({right}/{total})" if total else "- (0 alerts)"
            recall = f"{found / labelled:.2f}" if labelled else "-"
            cells += [precision, recall]
        print(f"{rule:<24}{cells[0]:>21}{cells[1]:>10}{cells[2]:>17}{cells[3]:>10}")


def _print_latency(count: int) -> None:
    """Brute forces through a real agent: emit() of the tenth failure to the alert in the file."""
    print(f"\nalert latency through an agent with its default config ({count} brute forces) ...", flush=True)
    latencies = []
    with running_agent() as (config, _):
        emitter = Emitter()
        try:
            for n in range(count):
                user = f"latency-{n}"
                failures = [
                    AuditEvent(
                        event_type=AuditEventType.AUTH_FAILURE, outcome=AuditOutcome.FAILURE, user_id=user
                    )
                    for _ in range(10)
                ]
                for event in failures[:-1]:
                    emitter.emit(event)
                emitter.flush(10)
                started = time.perf_counter()
                emitter.emit(failures[-1])
                latencies.append(_alert_seen(config.data_path, user, started))
        finally:
            emitter.close()
    seen = [latency for latency in latencies if latency is not None]
    print(
        f"  median {statistics.median(seen):.2f}s, max {max(seen):.2f}s"
        f" ({len(latencies) - len(seen)} not seen within 30 s)"
    )


def _alert_seen(data: Path, user: str, started: float) -> float | None:
    deadline = started + 30
    while time.perf_counter() < deadline:
        for event in file_events(data):
            if event.get("service_name") == "audit-agent" and event.get("user_id") == user:
                return time.perf_counter() - started
        time.sleep(0.02)
    return None


def _print_memory(keys: int, max_keys: int) -> None:
    print(f"\n{keys:,} distinct keys, detect.max_keys = {max_keys:,} (a fresh process) ...", flush=True)
    probe = f"from bench.detect import memory_probe; memory_probe({keys}, {max_keys})"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    print(
        f"  RSS {report['rss_before_mb']:.0f} MB -> {report['rss_after_mb']:.0f} MB"
        f" (+{report['rss_after_mb'] - report['rss_before_mb']:.0f} MB); keys held {report['keys']:,},"
        f" evicted {report['evicted']:,}; saved state {report['state_mb']:.1f} MB;"
        f" {report['events_per_s']:,.0f} events/s"
    )


def memory_probe(keys: int, max_keys: int) -> None:
    """Run in a fresh process: the Detector's memory after `keys` events, each of another user, address
    and resource, across the event types the rules keep state for; one JSON line on stdout."""
    before = _rss_mb()
    detector = Detector(DetectConfig(max_keys=max_keys))
    kinds = [
        (AuditEventType.AUTH_FAILURE, AuditOutcome.FAILURE),
        (AuditEventType.DATA_READ, AuditOutcome.SUCCESS),
        (AuditEventType.DATA_EXPORT, AuditOutcome.SUCCESS),
        (AuditEventType.RATE_LIMIT_EXCEEDED, AuditOutcome.SUCCESS),
    ]
    seconds = 0.0
    for n in range(keys):
        kind, outcome = kinds[n % len(kinds)]
        event = AuditEvent(
            event_type=kind,
            outcome=outcome,
            user_id=f"key-{n}",
            source_ip=f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",
            resource_type="doc",
            resource_id=f"doc-{n}",
        )
        frame = frame_encoder.encode(Frame("bench", n + 1, 0, event))
        started = time.perf_counter()
        detector.take(n + 1, frame)
        seconds += time.perf_counter() - started
    after = _rss_mb()
    state = detector.snapshot()
    print(
        json.dumps(
            {
                "rss_before_mb": before,
                "rss_after_mb": after,
                "keys": detector.keys,
                "evicted": detector.evicted,
                "state_mb": len(state) / 1e6,
                "events_per_s": keys / seconds,
            }
        )
    )


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
