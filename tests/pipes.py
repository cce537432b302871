"""Running a command whose reader has gone, as `audit-agent status | head -1` leaves it."""

from __future__ import annotations

import os
import subprocess
import sys


def into_closed_pipe(module: str, *args: str, buffered: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `python -m MODULE ARGS` with stdout a pipe whose reading end is already closed. `buffered`:
    as in a shell (output waits in the buffer until exit); otherwise each write fails as it is made."""
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "PYTHONUNBUFFERED": "" if buffered else "1"}
    try:
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
