"""Preparing the directories an agent runs in, and making sure only one agent uses them."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from agents.crypto.keyring import Keyring
from agents.errors import ConfigError
from agents.layout import DataLayout
from shipper.spool import PUBLIC_KEY_NAME


def lock(path: Path) -> int:
    """Hold an exclusive lock on `path` for the life of the process; ConfigError when another agent has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ConfigError(f"{path}: another audit-agent (pid {holder}) is already running here") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def prepare(layout: DataLayout, runtime: Path) -> list[int]:
    """Create and lock the data and runtime directories, publish the spool's sealing key and link the
    runtime dir's `spool` to ours. Returns the lock fds, to keep open."""
    layout.prepare()
    # Emitters of other users in the agent's group may spill here; the data dir stays owner-only otherwise.
    layout.spool.chmod(0o770)
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o750)
    fds = [lock(layout.root / "agent.lock"), lock(runtime / "agent.lock")]
    public = Keyring.load_or_create(layout.keys).spool_public_key()
    link = runtime / "spool"
    targets = [layout.spool]
    if link.is_symlink() or not link.exists():
        link.unlink(missing_ok=True)
        link.symlink_to(layout.spool)
    else:
        targets.append(link)  # emitters made a real directory before us; the intake reads it too
    for directory in targets:
        key = directory / PUBLIC_KEY_NAME
        key.write_bytes(public)
        key.chmod(0o644)
    return fds
