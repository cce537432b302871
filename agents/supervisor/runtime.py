"""Preparing the directories an agent runs in, making sure only one agent uses them, and leaving the
runtime directory clean at a clean stop."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from auditship.agents.crypto.keyring import Keyring
from auditship.agents.crypto.keys_dir import migrate_legacy_keys, prepare_keys_dir
from auditship.agents.durable import write_atomically
from auditship.agents.errors import ConfigError
from auditship.agents.integrity.signing import Signer
from auditship.agents.wal import growth
from auditship.ondisk.data_layout import DataLayout
from auditship.ondisk.files import lock_with_pid
from shipper.endpoint import OVERFLOW_NAME
from shipper.spool_writer import PUBLIC_KEY_NAME

log = logging.getLogger("auditship.supervisor")
# The spool: the agent's group may create files (write, search) but not list them, setgid so that
# every file gets the agent's group (which reads it), sticky so that a service cannot remove another's.
SPOOL_MODE = stat.S_ISGID | stat.S_ISVTX | 0o730
# The overflow spool, on the runtime directory's tmpfs, for when the spool's disk is full: the same but
# for the setgid bit, which the unit forbids setting (emitters give their files the group themselves).
OVERFLOW_MODE = stat.S_ISVTX | 0o730
LOCK_NAME = "agent.lock"


def lock(path: Path) -> int:
    """Hold an exclusive lock on `path` for the life of the process; ConfigError when another agent has it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        # ELOOP: a link planted where the lock goes; a root agent would truncate what it points at.
        raise ConfigError(f"{path}: cannot open the agent's lock ({exc.strerror}); is it a link?") from exc
    if not lock_with_pid(fd):
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ConfigError(f"{path}: another audit-agent (pid {holder}) is already running here")
    return fd


def prepare(layout: DataLayout, runtime: Path, spool: Path, keys: Path) -> list[int]:
    """Create and lock the data and runtime directories, prepare the keys directory (moving field keys an
    older agent left in the data directory into it, making the keyring and the signing key), make the
    spool and the runtime dir's overflow spool reachable for the agent's group, publish the key emitters
    seal to in both, and link the runtime dir's `spool` to the spool. Returns the lock fds, to keep
    open."""
    for directory in (layout.root, runtime):
        directory.mkdir(parents=True, exist_ok=True)
        _check_owned(directory)
    layout.prepare()
    runtime.chmod(0o750)
    fds = [lock(layout.root / LOCK_NAME), lock(runtime / LOCK_NAME)]
    # Before any worker opens the keyring: each would otherwise make a new one in keys_dir.
    prepare_keys_dir(keys)
    migrate_legacy_keys(layout.keys, keys)
    keyring = Keyring.load_or_create(keys)
    Signer.load_or_create(keys)
    _prepare_spool(spool)
    overflow = runtime / OVERFLOW_NAME
    overflow.mkdir(exist_ok=True)
    overflow.chmod(OVERFLOW_MODE)
    link = runtime / "spool"
    targets = [spool, overflow]
    if link.is_symlink() or not link.exists():
        link.unlink(missing_ok=True)
        link.symlink_to(spool)
    else:
        targets.append(link)  # emitters made a real directory before us; the intake reads it too
    public = keyring.spool_public_key()
    for directory in targets:
        # Atomic: an emitter reading it as we write must never seal to half a key.
        write_atomically(directory / PUBLIC_KEY_NAME, public, mode=0o644)
    return fds


def _check_owned(directory: Path) -> None:
    """The agent works only in directories that are its own, and never through a link: another user who
    made them first could otherwise see, swap or redirect what it writes there."""
    status = directory.lstat()
    if not stat.S_ISDIR(status.st_mode):
        raise ConfigError(
            f"{directory}: not a directory (a link or a file is where the agent's directory goes)"
        )
    if status.st_uid != os.geteuid():
        raise ConfigError(
            f"{directory}: owned by uid {status.st_uid}, not by the agent's user (uid {os.geteuid()}); "
            "remove it or name another directory"
        )


def _prepare_spool(spool: Path) -> None:
    spool.mkdir(parents=True, exist_ok=True)
    status = spool.stat()
    if stat.S_IMODE(status.st_mode) == SPOOL_MODE:
        return  # as tmpfiles.d made it; the unit's RestrictSUIDSGID= would refuse even a no-op chmod
    if status.st_uid != os.geteuid():
        # Made for us by someone else (an install step as root): its mode is theirs to set.
        log.warning("spool %s is not owned by the agent's user; leaving its mode as it is", spool)
        return
    try:
        spool.chmod(SPOOL_MODE)
    except PermissionError as exc:
        log.warning("spool %s: cannot set mode %o (%s); services may not spill there", spool, SPOOL_MODE, exc)


def clean(runtime: Path) -> None:
    """After a clean stop: remove the sockets and the lock, so that an emitter sees at once that no agent
    listens. The `spool` link and the overflow spool stay: emitters spill there, sealed, until the agent
    is back."""
    for name in ("intake.sock", "confirm.sock", "control.sock", growth.SOCKET_NAME, LOCK_NAME):
        (runtime / name).unlink(missing_ok=True)
