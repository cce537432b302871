"""Sustained events/s through intake -> WAL -> file sink, with producer processes emitting flat out.

Each producer builds its events first (a service's own cost, not the agent's), then emits them as
fast as it can; whatever the agent cannot take at once spills to the spool and still counts only when
it reaches the file. The clock runs from the producers' start to the file sink's cursor reaching the
last event; then the file is counted (nothing lost, nothing twice) and the agent's peak RSS (the sum of
VmHWM over its processes) is read.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import msgspec

from auditship.ondisk.file_sink import read_lines
from auditship.query.cat import sink_files
from bench.harness import running_agent
from shipper.control import request_status
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType


class _Id(msgspec.Struct):
    event_id: str


id_decoder = msgspec.json.Decoder(_Id)


def _producer(env: dict[str, str], name: str, count: int, ready: Any, go: Any, results: Queue[Any]) -> None:
    os.environ.update(env)
    events = [
        AuditEvent(
            event_type=AuditEventType.DATA_READ,
            user_id=f"{name}-user{i % 100}",
            resource_type="patient_record",
            resource_id=str(i),
            service_name=name,
            details={"n": i},
        )
        for i in range(count)
    ]
    emitter = Emitter()
    ready.wait()
    go.wait()
    for event in events:
        emitter.emit(event)
    emitter.close(timeout=60)
    results.put(msgspec.structs.asdict(emitter.stats))


def _peak_rss_mib(pids: list[int]) -> float:
    total_kib = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024


def run(producers: int, per_producer: int, *, with_lake: bool = False) -> None:
    total = producers * per_producer
    # The spine as the issue measures it: intake -> WAL -> file sink; --with-lake adds the Parquet sink.
    with running_agent(f"[sinks.parquet]\nenabled = {str(with_lake).lower()}\n") as (config, agent):
        env = {key: os.environ[key] for key in ("AUDITSHIP_RUNTIME_DIR", "AUDITSHIP_DATA_DIR")}
        context = multiprocessing.get_context("spawn")
        ready, go, results = context.Barrier(producers + 1), context.Event(), context.Queue()
        processes = [
            context.Process(target=_producer, args=(env, f"svc{i}", per_producer, ready, go, results))
            for i in range(producers)
        ]
        for process in processes:
            process.start()
        ready.wait()
        started = time.monotonic()
        go.set()
        stats = [results.get(timeout=600) for _ in processes]
        emitted = time.monotonic() - started
        last, committed, status = 0, -1, None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            status = request_status(config.runtime_path)
            if status is not None:
                counters = {w.name: w.counters for w in status.workers}
                last = int(counters["intake"].get("last_seq", 0))
                committed = min(
                    int(c.get("committed", 0)) for n, c in counters.items() if n.startswith("sink:")
                )
                if last >= total and committed >= last:
                    break
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        assert status is not None and agent.process is not None
        pids = [agent.process.pid] + [w.pid for w in status.workers if w.pid]
        rss = _peak_rss_mib(pids)
        ids = [
            id_decoder.decode(line).event_id
            for path in sink_files(config.data_path)
            for line in read_lines(path)
        ]
        lines, unique = len(ids), len(set(ids))
    spilled = sum(s["spilled"] for s in stats)
    dropped = sum(s["dropped"] for s in stats)
    print(f"{producers} producers x {per_producer:,} events = {total:,}")
    print(f"emitted in {emitted:.2f}s ({total / emitted:,.0f}/s); spilled {spilled:,}; dropped {dropped}")
    rate = lines / elapsed
    print(f"delivered to the file: {lines:,} events in {elapsed:.2f}s: {rate:,.0f} events/s (target 100,000)")
    print(f"nothing lost: {unique == total}; nothing twice: {unique == lines}; WAL last seq {last:,}")
    print(f"agent peak RSS (sum of its processes' VmHWM): {rss:.0f} MiB")
