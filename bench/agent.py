"""Sustained events/s through intake -> WAL -> file sink, with producer processes emitting flat out.

    python -m bench agent [--producers 4] [--events N] [--with-lake] [--services 50] [--rsyslog]

Each producer builds its events first (a service's own cost, not the agent's), then emits them as
fast as it can; whatever the agent cannot take at once spills to the spool and still counts only when
it reaches the file. The clock runs from the producers' start to every sink's cursor reaching the
last event (with --with-lake, the lake's too); then the file is counted (nothing lost, nothing twice)
and the agent's peak RSS (the sum of VmHWM over its processes) is read. `--services N` spreads each
producer's events over N service names, which the lake partitions by. `--rsyslog` first sends the same
events, as JSON lines, from as many producer processes to rsyslog (imtcp -> omfile), flat out, timed
until its file holds them all: the baseline, in the same run, for the ratio issue 16 sets (>= 1.0x).
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any

import msgspec

from auditship.ondisk.file_sink import read_lines
from auditship.query.cat import sink_files
from bench.cost import syslog_line
from bench.harness import memory_mib, running_agent
from shipper.control import request_status
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType


class _Id(msgspec.Struct):
    event_id: str


id_decoder = msgspec.json.Decoder(_Id)
_spawn = multiprocessing.get_context("spawn")


def _events(name: str, count: int, services: int) -> list[AuditEvent]:
    return [
        AuditEvent(
            event_type=AuditEventType.DATA_READ,
            user_id=f"{name}-user{i % 100}",
            resource_type="patient_record",
            resource_id=str(i),
            service_name=f"svc{i % services}" if services > 1 else name,
            details={"n": i},
        )
        for i in range(count)
    ]


def _producer(
    env: dict[str, str], name: str, count: int, services: int, ready: Any, go: Any, results: Queue[Any]
) -> None:
    os.environ.update(env)
    events = _events(name, count, services)
    emitter = Emitter()
    ready.wait()
    go.wait()
    for event in events:
        emitter.emit(event)
    emitter.close(timeout=60)
    results.put(msgspec.structs.asdict(emitter.stats))


def _syslog_producer(port: int, name: str, count: int, services: int, ready: Any, go: Any) -> None:
    host = socket.gethostname().encode()
    lines = [syslog_line(event, host) for event in _events(name, count, services)]
    with socket.create_connection(("127.0.0.1", port)) as connection:
        ready.wait()
        go.wait()
        connection.sendall(b"".join(lines))


def _released(
    producers: int, target: Callable[..., None], args_of: Callable[[int, Any, Any], tuple[Any, ...]]
) -> tuple[list[BaseProcess], float]:
    """Start `producers` processes of `target` (`args_of(i, ready, go)` their arguments), each built its
    events and waiting at `ready`, then release them at once with `go`; them, and when they went."""
    ready, go = _spawn.Barrier(producers + 1), _spawn.Event()
    processes: list[BaseProcess] = [
        _spawn.Process(target=target, args=args_of(i, ready, go)) for i in range(producers)
    ]
    for process in processes:
        process.start()
    ready.wait()
    started = time.monotonic()
    go.set()
    return processes, started


def _rsyslog_rate(producers: int, per_producer: int, services: int) -> float:
    """Events/s into rsyslog's file from `producers` processes sending flat out."""
    from tests import rsyslog

    if not rsyslog.available():
        raise RuntimeError("rsyslogd is not installed (apt-get install rsyslog): no baseline")
    total = producers * per_producer
    server = rsyslog.Rsyslog(raw_lines=True).start()
    try:
        processes, started = _released(
            producers,
            _syslog_producer,
            lambda i, ready, go: (server.port, f"svc{i}", per_producer, services, ready, go),
        )
        deadline = started + 600
        while not server.output.exists() or server.output.read_bytes().count(b"\n") < total:
            if time.monotonic() > deadline:
                raise TimeoutError("rsyslog did not write every event within 10 minutes")
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        for process in processes:
            process.join(60)
    finally:
        server.cleanup()
    return total / elapsed


def run(
    producers: int, per_producer: int, *, with_lake: bool = False, services: int = 1, rsyslog: bool = False
) -> None:
    total = producers * per_producer
    baseline = _rsyslog_rate(producers, per_producer, services) if rsyslog else None
    # The spine as the issue measures it: intake -> WAL -> file sink; --with-lake adds the Parquet sink.
    with running_agent(f"[sinks.parquet]\nenabled = {str(with_lake).lower()}\n") as (config, agent):
        env = {key: os.environ[key] for key in ("AUDITSHIP_RUNTIME_DIR", "AUDITSHIP_DATA_DIR")}
        results: Queue[Any] = _spawn.Queue()
        processes, started = _released(
            producers,
            _producer,
            lambda i, ready, go: (env, f"svc{i}", per_producer, services, ready, go, results),
        )
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
        rss = memory_mib(pids, "VmHWM")
        ids = [
            id_decoder.decode(line).event_id
            for path in sink_files(config.data_path)
            for line in read_lines(path)
        ]
        lines, unique = len(ids), len(set(ids))
    spilled = sum(s["spilled"] for s in stats)
    dropped = sum(s["dropped"] for s in stats)
    spread = f", over {services} services" if services > 1 else ""
    sinks = "file sink and lake" if with_lake else "file sink"
    print(f"{producers} producers x {per_producer:,} events = {total:,}{spread}; {sinks}")
    print(f"emitted in {emitted:.2f}s ({total / emitted:,.0f}/s); spilled {spilled:,}; dropped {dropped}")
    rate = lines / elapsed
    print(f"delivered to the file: {lines:,} events in {elapsed:.2f}s: {rate:,.0f} events/s (target 100,000)")
    if baseline is not None:
        ratio = rate / baseline
        print(f"rsyslog, same events and producers: {baseline:,.0f} events/s; agent/rsyslog {ratio:.2f}x")
    print(f"nothing lost: {unique == total}; nothing twice: {unique == lines}; WAL last seq {last:,}")
    print(f"agent peak RSS (sum of its processes' VmHWM): {rss:.0f} MiB")
