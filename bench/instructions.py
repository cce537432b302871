"""Instructions per HTTP request, counted by valgrind's callgrind: auditship's middleware beside its peers.

    python -m bench middleware --instructions

Time on a shared machine swings by a fifth between runs; the number of instructions a request takes
does not, whatever else runs. Each stack of bench.apps serves each app under
`valgrind --tool=callgrind`; after a warm-up the counters are zeroed, keep-alive requests are sent one
after the other, and the counters are dumped. What a request costs in the kernel (the socket calls) is
not counted, nor is the agent's work on the events (another process). Two servers are measured at a
time: a count does not depend on what else runs.

The servers run in the bench's own environment, bench/.venv, made from bench/requirements.txt (the
peers are no dependency of auditship), so every row of one run has the same Starlette, FastAPI and
uvicorn.

Under valgrind a server is some fifty times slower, so with the emitter's default linger (50 ms) each
batch would hold one event, which overstates what emit() costs at speed. The audited servers therefore
linger LINGER_MS: emit() sends each batch when it holds `batch_max` (128) events, as it does at a few
thousand requests a second.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.apps import APPS, STACKS
from bench.harness import running_agent
from bench.middleware import keep_alive_requests

# Per app: requests of warm-up, then requests counted. The items app's collector runs a full collection
# every couple of hundred requests: a thousand spread that over enough of them.
REQUESTS = {"empty": (300, 2_000), "items": (100, 1_000)}
# The stacks measured on each app by default: the items app only for the targets, it takes long.
DEFAULT_STACKS = {
    "empty": STACKS,
    "items": ("plain", "discarding", "audited", "bare", "bare-sent", "correlation-id"),
}
LINGER_MS = 600_000.0
# What the versions line names.
PACKAGES = (
    "starlette",
    "fastapi",
    "uvicorn",
    "msgspec",
    "asgi-correlation-id",
    "structlog",
    "prometheus-fastapi-instrumentator",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation-asgi",
)
LABELS = {
    "plain": "plain",
    "discarding": "auditship, events discarded",
    "audited": "auditship, events sent (batches of 128)",
    "bare": "bare: the least a Python request event costs, discarded",
    "bare-sent": "bare: the least a Python request event costs, sent",
    "correlation-id": "asgi-correlation-id alone",
    "asgi-structlog": "pure-ASGI + asgi-correlation-id + structlog JSON line",
    "prometheus": "prometheus-fastapi-instrumentator",
    "base-http": "BaseHTTPMiddleware, no-op dispatch",
    "otel": "OpenTelemetry server span, BatchSpanProcessor, no-op exporter",
}
_START_S = 300.0  # python and uvicorn starting under valgrind
_ROOT = Path(__file__).resolve().parents[1]
_VENV = _ROOT / "bench" / ".venv"
_REQUIREMENTS = _ROOT / "bench" / "requirements.txt"


def bench_python() -> Path:
    """The python of bench/.venv, made (or brought up to date) from bench/requirements.txt first."""
    python = _VENV / "bin" / "python"
    stamp = _VENV / "requirements.txt"
    wanted = _REQUIREMENTS.read_text()
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        print(f"making {_VENV.relative_to(_ROOT)} from {_REQUIREMENTS.relative_to(_ROOT)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(_VENV)], check=True)
        install = [str(python), "-m", "pip", "install", "--quiet", "-r", str(_REQUIREMENTS)]
        subprocess.run(install, cwd=_ROOT, check=True)  # cwd: the file's `-e .`
        stamp.write_text(wanted)
    return python


def _versions(python: Path) -> str:
    script = "import importlib.metadata as m, sys\nfor p in sys.argv[1:]: print(p, m.version(p))"
    found = subprocess.run([str(python), "-c", script, *PACKAGES], capture_output=True, text=True, check=True)
    return ", ".join(found.stdout.splitlines())


def _count(python: Path, stack: str, app: str, directory: Path) -> float:
    """Instructions per request of one stack's server on one app."""
    name = f"{stack}-{app}"
    profile, port_file = directory / f"{name}.callgrind", directory / f"{name}.port"
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={profile}", str(python), "-m"]
    command += ["bench.apps", stack, app, str(port_file), str(LINGER_MS)]
    # A fixed hash seed: with a random one, the same server's count moves by 2% from run to run (dicts and
    # sets laid out differently, the collector running at other moments).
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    server = subprocess.Popen(
        command, cwd=_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    warm_up, counted = REQUESTS[app]
    try:
        deadline = time.monotonic() + _START_S
        while not port_file.exists() or not port_file.read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {name} server did not start under valgrind")
            time.sleep(0.5)
        port = int(port_file.read_text())
        asyncio.run(keep_alive_requests(port, count=warm_up, path=APPS[app]))
        subprocess.run(["callgrind_control", "--zero", str(server.pid)], check=True, capture_output=True)
        asyncio.run(keep_alive_requests(port, count=counted, path=APPS[app]))
        subprocess.run(["callgrind_control", "--dump", str(server.pid)], check=True, capture_output=True)
    finally:
        server.terminate()
        server.wait(60)
    dump = next(directory.glob(f"{profile.name}*.1"))  # the first dump: the measured requests
    found = re.search(r"^summary: (\d+)$", dump.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no summary line in {dump}")
    return int(found.group(1)) / counted


def _targets(counts: dict[tuple[str, str], float]) -> None:
    """The issue's targets, for those whose rows were measured."""
    over = {
        key: count - counts["plain", key[1]] for key, count in counts.items() if ("plain", key[1]) in counts
    }
    if ("discarding", "empty") in over and ("correlation-id", "empty") in over:
        met = over["discarding", "empty"] <= over["correlation-id", "empty"]
        margin = (over["discarding", "empty"] - over["correlation-id", "empty"]) / 1000
        print(f"  events discarded <= asgi-correlation-id alone (empty): {margin:+,.1f}k, {_met(met)}")
    for app, target in (("empty", 10.0), ("items", 1.0)):
        if ("audited", app) in over:
            sent = over["audited", app] / counts["plain", app] * 100
            print(f"  events sent <= +{target:g}% ({app}): {sent:+.2f}%, {_met(sent <= target)}")


def _met(met: bool) -> str:
    return "met" if met else "NOT met"


def run(stacks: list[str] | None = None, apps: list[str] | None = None) -> None:
    """Count and print the stacks on the apps: by default DEFAULT_STACKS, the targets' rows with them."""
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        raise SystemExit(
            "python -m bench middleware --instructions needs valgrind (apt-get install valgrind)"
        )
    python = bench_python()
    print(_versions(python))
    runs = [(stack, app) for app in apps or APPS for stack in (stacks or DEFAULT_STACKS[app])]
    print(
        "HTTP servers under callgrind, one keep-alive connection, requests counted after a warm-up: "
        + "; ".join(
            f"{app} {APPS[app]} {REQUESTS[app][1]:,} after {REQUESTS[app][0]}" for app in apps or APPS
        )
    )
    print(f"audited: emitter linger {LINGER_MS / 1000:g} s, so each batch holds batch_max (128) events")
    with (
        running_agent('[wal]\nfsync = "never"\n'),
        tempfile.TemporaryDirectory(prefix="as-cg-") as name,
        ThreadPoolExecutor(2) as pool,
    ):
        counted = pool.map(lambda run: _count(python, run[0], run[1], Path(name)), runs)
        counts = dict(zip(runs, counted, strict=True))
    measured_apps = [app for app in APPS if any(key[1] == app for key in counts)]
    print(
        f"{'instructions per request':<64}" + "".join(f"{app + ' ' + APPS[app]:>28}" for app in measured_apps)
    )
    for stack in STACKS:
        cells = ""
        for app in measured_apps:
            count, plain = counts.get((stack, app)), counts.get(("plain", app))
            cell = "-" if count is None else f"{count / 1000:,.0f}k"
            if count is not None and plain is not None and stack != "plain":
                cell += f" {(count - plain) / 1000:+,.0f}k {(count / plain - 1) * 100:+.1f}%"
            cells += f"{cell:>28}"
        if any(key[0] == stack for key in counts):
            print(f"  {LABELS[stack]:<62}{cells}")
    print("targets:")
    _targets(counts)
