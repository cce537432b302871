"""A directory whose fsyncs take a set time: bench/slow_fsync_fs.py mounted on it, for `bench emit --ack`.

This machine's virtual disk syncs in ~0.1 ms, less than an IPC round trip, so a benchmark of shared
fsyncs run on it measures the round trip, not the sharing. Mounted with a delay of a few milliseconds
(a cloud volume, an SSD without a power-safe cache), the WAL costs what it costs on such a disk.
Needs root (to mount and unmount FUSE) and Debian's python3-fusepy for /usr/bin/python3.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DAEMON = Path(__file__).with_name("slow_fsync_fs.py")
SYSTEM_PYTHON = "/usr/bin/python3"
MOUNT_TIMEOUT_S = 10.0


class SlowDiskUnavailable(RuntimeError):
    """The file system could not be mounted here; the message says why."""


@contextmanager
def slow_fsync_mount(directory: Path, delay_ms: float) -> Iterator[Path]:
    """Mount a pass-through of `<directory>.backing` on `directory` (both made) whose fsyncs take
    `delay_ms`, for the life of the block; SlowDiskUnavailable when it cannot be mounted."""
    if os.geteuid() != 0:
        raise SlowDiskUnavailable("mounting FUSE here needs root")
    backing = directory.with_name(directory.name + ".backing")
    log = directory.with_name(directory.name + ".log")
    for path in (directory, backing):
        path.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        daemon = subprocess.Popen(
            [SYSTEM_PYTHON, str(DAEMON), str(directory), str(backing), str(delay_ms)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + MOUNT_TIMEOUT_S
    while not os.path.ismount(directory):
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            daemon.wait()
            error = log.read_text(errors="replace").strip()[-500:] or "timed out"
            raise SlowDiskUnavailable(
                f"{DAEMON.name} did not mount {directory}: {error} "
                "(it needs /dev/fuse and python3-fusepy: apt-get install python3-fusepy)"
            )
        time.sleep(0.05)
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=False, capture_output=True)
        try:
            daemon.wait(MOUNT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
