"""What the benchmarks share: a real agent in a temporary directory, and percentile reports."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

from auditship.agents.config import AgentConfig, parse_config
from auditship.agents.embedded import embedded_agent
from auditship.ondisk.data_layout import DataLayout
from shipper.embedded import EmbeddedAgent


@contextmanager
def running_agent(
    config_toml: str = "", wal_mount: Callable[[Path], AbstractContextManager[object]] | None = None
) -> Iterator[tuple[AgentConfig, EmbeddedAgent]]:
    """An agent with its own runtime and data directories under /tmp (short ipc paths); `wal_mount`,
    if given, mounts a file system on its WAL directory for the agent's life (bench/slow_disk.py)."""
    root = Path(tempfile.mkdtemp(prefix="as-bench-", dir="/tmp"))
    saved = {key: os.environ.get(key) for key in ("AUDITSHIP_RUNTIME_DIR", "AUDITSHIP_DATA_DIR")}
    os.environ["AUDITSHIP_RUNTIME_DIR"] = str(root / "run")
    os.environ["AUDITSHIP_DATA_DIR"] = str(root / "data")
    config = parse_config(config_toml)
    agent = embedded_agent(config)
    mounted = ExitStack()
    try:
        if wal_mount is not None:
            mounted.enter_context(wal_mount(DataLayout(config.data_path).wal))
        agent.start()
        yield config, agent
    finally:
        agent.stop()
        mounted.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    """Median and p99 in microseconds."""
    ordered = sorted(samples_ns)
    return statistics.median(ordered) / 1000, ordered[int(len(ordered) * 0.99)] / 1000


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds the processes have used, all their threads included."""
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:  # noqa: PTH123 - one read of a proc file
            fields = stat.read().rpartition(")")[2].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_mib(pids: list[int], field: str = "VmRSS") -> float:
    """The sum over the processes of a /proc/PID/status memory field: VmRSS now, VmHWM its peak."""
    total_kib = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024
