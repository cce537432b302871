"""Workers never outlive their supervisor, nor run beside the workers of the next one.

A worker left behind by a killed supervisor would read the WAL, write the files and hold the intake's
socket beside its replacement, and its mailbox, named like the replacement's, would take the new
supervisor's messages. Three parts, each closing a gap the others leave:

- `die_with_parent`: first thing in a worker, the kernel is asked to SIGKILL it when its supervisor dies
  (Linux's parent-death signal), then the worker checks that the supervisor has not died already, before
  the request was made.
- `Mailbox.orphaned()`: the same check, made by the worker's loops and inside their waits, where there
  is no parent-death signal.
- `claim` and `reap`: each worker holds a lock named after it, with its pid in the file, for its whole
  life; a starting supervisor tries every lock, and one it cannot take belongs to a worker of an earlier
  supervisor, which it kills and waits for before it starts its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from pathlib import Path

from auditship.ondisk.errors import AuditshipError
from auditship.ondisk.files import lock_with_pid, make_private_dirs, try_lock

log = logging.getLogger("auditship.supervisor")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
REAP_POLL_S = 0.05


class LeftoverWorker(AuditshipError):
    """A worker of an earlier supervisor still runs and could not be stopped."""


def die_with_parent(parent: int) -> None:
    """Have this process SIGKILLed when `parent` (its supervisor) dies; exit at once if it has already.

    SIGKILL, not SIGTERM: workers ignore SIGTERM (the supervisor orchestrates shutdown), and a worker
    killed at any moment loses nothing, since its WAL cursor moves only after a delivery. The signal comes
    when the supervisor's thread that started the worker ends: the supervisor starts workers from its
    main thread only."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"prctl(PR_SET_PDEATHSIG): {os.strerror(error)}")
    if os.getppid() != parent:
        # The supervisor died between starting us and the prctl: the kernel will never send the signal.
        log.error("supervisor %d is gone before this worker (pid %d) started; exiting", parent, os.getpid())
        sys.exit(1)


def lock_name(worker: str) -> str:
    return worker.replace(":", "-") + ".lock"


def claim(directory: Path, worker: str) -> int:
    """Take the worker's lock for the life of the process and write its pid in it; the fd, to keep open.
    LeftoverWorker when another process holds it (the supervisor reaps before it starts workers, so only
    a worker it could not stop can)."""
    make_private_dirs(directory)
    path = directory / lock_name(worker)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    if not lock_with_pid(fd):
        holder = _holder(fd)
        os.close(fd)
        raise LeftoverWorker(f"{path}: worker {worker} (pid {holder}) of an earlier agent still runs")
    return fd


def reap(directory: Path, timeout_s: float) -> list[int]:
    """Kill every worker that still holds a lock in `directory`, and wait until each lock is free; the pids
    killed. Call it holding the agent's lock, before starting workers. LeftoverWorker when a lock is still
    held after `timeout_s`."""
    killed: list[int] = []
    for path in sorted(directory.glob("*.lock")) if directory.is_dir() else []:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            killed += _reap_one(path, fd, time.monotonic() + timeout_s)
        finally:
            os.close(fd)  # releases the lock, if we took it
    return killed


def _reap_one(path: Path, fd: int, deadline: float) -> list[int]:
    killed: list[int] = []
    while not try_lock(fd):
        pid = _holder(fd)
        # The pid in the file may be stale (the holder took the lock and has not written its own pid yet),
        # even ours: only another process that has this very file open is a holder.
        if pid is not None and pid not in (os.getpid(), *killed) and _has_open(pid, os.fstat(fd)):
            log.warning("%s: a worker of an earlier agent (pid %d) still runs; killing it", path, pid)
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile: as good
                os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        if time.monotonic() >= deadline:
            raise LeftoverWorker(
                f"{path}: held by pid {pid or '?'} since before this agent started and not released; "
                "stop it, then start the agent again"
            )
        time.sleep(REAP_POLL_S)
    return killed


def _holder(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _has_open(pid: int, lock: os.stat_result) -> bool:
    """Whether process `pid` has the file `lock` open."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        links = list(fds.iterdir())
    except OSError:
        return False  # gone, or not ours to look at
    for link in links:
        try:
            target = link.stat()
        except OSError:
            continue
        if (target.st_dev, target.st_ino) == (lock.st_dev, lock.st_ino):
            return True
    return False
