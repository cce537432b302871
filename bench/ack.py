"""Acknowledged emits per second with 1, 8 and 64 concurrent callers, at wal.fsync = "always".

Each caller loops on an acknowledged emit for a fixed time: threads on `emit(event, wait=...)`, asyncio
tasks on `await log_event(event, durable=True)`. An acknowledged emit returns once the intake has the
event in its WAL and fsynced; callers that arrive together share one fsync (group commit), so the rate
should grow with the callers while each waits no more than a few fsyncs.

The WAL sits on a file system whose fsyncs take `--fsync-ms` (2 ms by default: bench/slow_disk.py), as
on a disk whose flush costs milliseconds. On this machine's virtual disk an fsync takes ~0.1 ms, less
than an IPC round trip, so without the delay the targets would measure the round trip, not the
sharing; `--fsync-ms 0` runs on the plain disk. The fsync time is measured in the same run, in the WAL's
directory, and is the unit of latency. The intake's `ack_syncs` gives the acknowledgements per sync.
The lake is off: the intake's fsyncs are what is measured, not the CPU the Parquet sink would take from
a 2-core machine.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
from pathlib import Path

from auditship.agents.config import AgentConfig
from auditship.ondisk.data_layout import DataLayout
from bench.emit import sample_event
from bench.harness import percentiles, running_agent
from bench.slow_disk import SlowDiskUnavailable, slow_fsync_mount
from shipper.config import AuditConfig, AuditContext
from shipper.control import request_status
from shipper.emitter import Emitter
from shipper.logger import AuditLogger

CALLERS = (1, 8, 64)
STATS_WAIT_S = 0.3
"""Longer than the agent's stats interval below: a status read after it counts every sync before it."""
AGENT = """
[wal]
fsync = "always"
[supervisor]
stats_interval_s = 0.1
[sinks.parquet]
enabled = false
"""


def fsync_ns(directory: Path, rounds: int = 200) -> float:
    """Median time of appending 1 KB and fdatasync-ing it in `directory`."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    samples = []
    try:
        for _ in range(rounds):
            start = time.perf_counter_ns()
            os.write(fd, b"x" * 1024)
            os.fdatasync(fd)
            samples.append(time.perf_counter_ns() - start)
    finally:
        os.close(fd)
        path.unlink()
    return percentiles(samples)[0] * 1000


def _threads(emitter: Emitter, callers: int, seconds: float) -> list[int]:
    latencies: list[list[int]] = [[] for _ in range(callers)]
    stop = time.monotonic() + seconds

    def caller(mine: list[int]) -> None:
        event = sample_event()
        while time.monotonic() < stop:
            start = time.perf_counter_ns()
            emitter.emit(event, wait=10)
            mine.append(time.perf_counter_ns() - start)

    threads = [threading.Thread(target=caller, args=(mine,)) for mine in latencies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [sample for mine in latencies for sample in mine]


def _tasks(emitter: Emitter, callers: int, seconds: float) -> list[int]:
    logger = AuditLogger(
        AuditConfig(), AuditContext(service_name="bench"), emit=emitter.emit, submit=emitter.submit
    )

    async def caller(mine: list[int], stop: float) -> None:
        while time.monotonic() < stop:
            start = time.perf_counter_ns()
            await logger.log_event(sample_event(), durable=True)
            mine.append(time.perf_counter_ns() - start)

    async def main() -> list[int]:
        latencies: list[list[int]] = [[] for _ in range(callers)]
        stop = time.monotonic() + seconds
        await asyncio.gather(*(caller(mine, stop) for mine in latencies))
        return [sample for mine in latencies for sample in mine]

    return asyncio.run(main())


def run(seconds: float, fsync_ms: float) -> None:
    mount = functools.partial(slow_fsync_mount, delay_ms=fsync_ms) if fsync_ms > 0 else None
    try:
        with running_agent(AGENT, wal_mount=mount) as (config, _agent):
            _measure(config, seconds, fsync_ms)
    except SlowDiskUnavailable as exc:
        print(f"no slow-fsync file system ({exc}); measuring on the plain disk")
        with running_agent(AGENT) as (config, _agent):
            _measure(config, seconds, 0)


def _measure(config: AgentConfig, seconds: float, fsync_ms: float) -> None:
    wal = DataLayout(config.data_path).wal
    fsync = fsync_ns(wal)
    emitter = Emitter(config.intake_endpoint)
    emitter.emit(sample_event(), wait=10)  # connected, and the acknowledgement socket subscribed
    where = f"a file system whose fsyncs sleep {fsync_ms:g} ms" if fsync_ms else "the plain disk"
    print(f"fsync (1 KB append + fdatasync) in the WAL's directory, on {where}: {fsync / 1e6:.3f} ms")
    print(
        f"{'callers':<18}{'acks/s':>10}{'vs 1':>8}{'p50 ms':>9}{'p99 ms':>9}{'p50/fsync':>11}"
        f"{'p99/fsync':>11}{'acks/sync':>11}"
    )
    for kind, measure in (("threads", _threads), ("asyncio tasks", _tasks)):
        single = 0.0
        for callers in CALLERS:
            syncs = _ack_syncs(config)
            samples = measure(emitter, callers, seconds)
            acks_per_sync = len(samples) / max(1, _ack_syncs(config) - syncs)
            rate = len(samples) / seconds
            single = single or rate
            p50, p99 = percentiles(samples)
            print(
                f"{callers:>3} {kind:<14}{rate:>10,.0f}{rate / single:>7.1f}x{p50 / 1000:>9.2f}"
                f"{p99 / 1000:>9.2f}{p50 * 1000 / fsync:>10.1f}x{p99 * 1000 / fsync:>10.1f}x"
                f"{acks_per_sync:>11.1f}"
            )
    print("targets: 64 callers >= 20x one caller; p99 <= 3 fsyncs")
    print(f"emitter counters: {emitter.stats}")
    emitter.close()


def _ack_syncs(config: AgentConfig) -> int:
    """The intake's count of syncs for acknowledged emits, once its report is current (it reports
    every supervisor.stats_interval_s)."""
    time.sleep(STATS_WAIT_S)
    status = request_status(config.runtime_path)
    intake = next((w for w in status.workers if w.name == "intake"), None) if status else None
    return int(intake.counters.get("ack_syncs", 0)) if intake else 0
