"""What the benchmarks share: a real agent in a temporary directory, and percentile reports."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from auditship.agents.config import AgentConfig, parse_config
from auditship.agents.embedded import embedded_agent
from shipper.embedded import EmbeddedAgent


@contextmanager
def running_agent(config_toml: str = "") -> Iterator[tuple[AgentConfig, EmbeddedAgent]]:
    """An agent with its own runtime and data directories under /tmp (short ipc paths)."""
    root = Path(tempfile.mkdtemp(prefix="as-bench-", dir="/tmp"))
    saved = {key: os.environ.get(key) for key in ("AUDITSHIP_RUNTIME_DIR", "AUDITSHIP_DATA_DIR")}
    os.environ["AUDITSHIP_RUNTIME_DIR"] = str(root / "run")
    os.environ["AUDITSHIP_DATA_DIR"] = str(root / "data")
    config = parse_config(config_toml)
    agent = embedded_agent(config)
    agent.start()
    try:
        yield config, agent
    finally:
        agent.stop()
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
