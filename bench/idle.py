"""What an agent with nothing to do costs its host: CPU of every agent process over a quiet stretch.

    python -m bench idle [--seconds 30]

The agent runs with the defaults (file sink, Parquet lake, detector); after a warm-up the CPU time of the
supervisor and each worker is read from /proc at the start and the end. Target (issue 16): at most 0.5% of
a core for the whole agent; rsyslog, the baseline, wakes only on input (about 0).
"""

from __future__ import annotations

import time

from bench.harness import cpu_seconds, memory_mib, running_agent

WARM_UP_S = 5.0
TARGET_PERCENT = 0.5


def run(seconds: float) -> None:
    from shipper.control import request_status

    with running_agent() as (config, agent):
        status = request_status(config.runtime_path)
        if agent.process is None or status is None:
            raise RuntimeError("the agent does not answer")
        roles = {agent.process.pid: "supervisor"} | {
            worker.pid: worker.name for worker in status.workers if worker.pid
        }
        time.sleep(WARM_UP_S)
        before = {pid: cpu_seconds([pid]) for pid in roles}
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        used = {pid: cpu_seconds([pid]) - before[pid] for pid in roles}
        rss = {pid: memory_mib([pid]) for pid in roles}
    print(f"agent idle for {elapsed:.0f} s (defaults: file sink, lake and detector), % of one core:")
    for pid, role in roles.items():
        print(f"  {role:<14}{used[pid] / elapsed * 100:7.3f}%  RSS {rss[pid]:6.1f} MiB  (pid {pid})")
    total = sum(used.values()) / elapsed * 100
    verdict = "within" if total <= TARGET_PERCENT else "above"
    memory = sum(rss.values())
    print(f"  {'total':<14}{total:7.3f}%  RSS {memory:6.1f} MiB  ({verdict} the {TARGET_PERCENT}% target)")
