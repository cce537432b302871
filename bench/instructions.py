"""Instructions per HTTP request of the middleware benchmark's server, counted by valgrind's callgrind.

    python -m bench middleware --instructions

Time on a shared machine swings by a fifth between runs; the number of instructions a request takes
does not, whatever else runs. Each variant's server (the one `python -m bench middleware` measures)
runs under `valgrind --tool=callgrind`; after WARM_UP requests the counters are zeroed, REQUESTS
keep-alive requests are sent one after the other, and the counters are dumped. What the request costs
in the kernel (the socket calls) is not counted. Under valgrind the server is some fifty times slower,
so the emitter's batches hold one event each: the audited variant overstates what `emit()` costs at
speed; the discarding one is exact.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import running_agent
from bench.middleware import VARIANTS, http_server, keep_alive_requests

WARM_UP = 300
REQUESTS = 2_000
_START_S = 300.0  # python and uvicorn starting under valgrind
_ROOT = Path(__file__).resolve().parents[1]


def serve(variant: str, port_file: Path) -> None:
    """The server, in the foreground (valgrind runs this module): writes its port, serves until killed."""
    server, listener, _ = http_server(variant)
    port_file.write_text(str(listener.getsockname()[1]))
    server.run(sockets=[listener])


def _requests(port: int, count: int) -> None:
    asyncio.run(keep_alive_requests(port, count=count))


def _count(variant: str, directory: Path) -> float:
    """Instructions per request of one variant's server."""
    profile, port_file = directory / f"{variant}.callgrind", directory / f"{variant}.port"
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={profile}"]
    server = subprocess.Popen(
        [*command, sys.executable, "-m", "bench.instructions", variant, str(port_file)],
        cwd=_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + _START_S
        while not port_file.exists() or not port_file.read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {variant} server did not start under valgrind")
            time.sleep(0.5)
        port = int(port_file.read_text())
        _requests(port, WARM_UP)
        subprocess.run(["callgrind_control", "--zero", str(server.pid)], check=True, capture_output=True)
        _requests(port, REQUESTS)
        subprocess.run(["callgrind_control", "--dump", str(server.pid)], check=True, capture_output=True)
    finally:
        server.terminate()
        server.wait(60)
    dump = next(directory.glob(f"{profile.name}*.1"))  # the first dump: the measured requests
    found = re.search(r"^summary: (\d+)$", dump.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no summary line in {dump}")
    return int(found.group(1)) / REQUESTS


def run() -> None:
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        raise SystemExit(
            "python -m bench middleware --instructions needs valgrind (apt-get install valgrind)"
        )
    print(f"HTTP server under callgrind: {REQUESTS:,} keep-alive requests after {WARM_UP} of warm-up")
    with running_agent('[wal]\nfsync = "never"\n'), tempfile.TemporaryDirectory(prefix="as-cg-") as name:
        counts = {variant: _count(variant, Path(name)) for variant in VARIANTS}
    for variant in VARIANTS:
        over = (counts[variant] / counts["plain"] - 1) * 100
        print(f"  {variant:<12}{counts[variant] / 1000:>9,.1f}k instructions/request{over:>+8.1f}%")


if __name__ == "__main__":
    serve(sys.argv[1], Path(sys.argv[2]))
