"""Acknowledged emits per second with 1, 8 and 64 concurrent callers, at wal.fsync = "always".

Each caller loops on an acknowledged emit for a fixed time: threads on `emit(event, wait=...)`, asyncio
tasks on `await log_event(event, durable=True)`. An acknowledged emit returns once the intake has the
event in its WAL and fsynced; callers that arrive together share one fsync (group commit), so the rate
should grow with the callers while each waits no more than a few fsyncs. The fsync time is measured in
the same run, on the agent's data directory, as the unit of latency. The lake is off: the intake's
fsyncs are what is measured, not the CPU the Parquet sink would take from a 2-core machine.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from bench.emit import sample_event
from bench.harness import percentiles, running_agent
from shipper.config import AuditConfig, AuditContext
from shipper.emitter import Emitter
from shipper.logger import AuditLogger

CALLERS = (1, 8, 64)
AGENT = """
[wal]
fsync = "always"
[sinks.parquet]
enabled = false
"""


def fsync_ns(directory: Path, rounds: int = 200) -> float:
    """Median time of appending 1 KB and fdatasync-ing it, in the agent's data directory."""
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


def run(seconds: float) -> None:
    with running_agent(AGENT) as (config, _agent):
        fsync = fsync_ns(config.data_path)
        emitter = Emitter(config.intake_endpoint)
        emitter.emit(sample_event(), wait=10)  # connected, and the acknowledgement socket subscribed
        print(f"fsync (1 KB append + fdatasync) on the data directory: {fsync / 1e6:.3f} ms")
        print(f"{'callers':<18}{'acks/s':>10}{'vs 1':>8}{'p50 ms':>9}{'p99 ms':>9}{'p99/fsync':>11}")
        for kind, measure in (("threads", _threads), ("asyncio tasks", _tasks)):
            single = 0.0
            for callers in CALLERS:
                samples = measure(emitter, callers, seconds)
                rate = len(samples) / seconds
                single = single or rate
                p50, p99 = percentiles(samples)
                print(
                    f"{callers:>3} {kind:<14}{rate:>10,.0f}{rate / single:>7.1f}x"
                    f"{p50 / 1000:>9.2f}{p99 / 1000:>9.2f}{p99 * 1000 / fsync:>10.1f}x"
                )
        print("targets: 64 callers >= 20x one caller; p99 <= 3 fsyncs")
        print(f"emitter counters: {emitter.stats}")
        emitter.close()
