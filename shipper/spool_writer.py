"""Spool files: where an emitter puts events it cannot hand to the agent, for the agent to pick up.

One file per emitter, `<spool dir>/<emitter id>.<128 random bits, hex>.spool`, holding records
(shipper.records) whose first byte says how the frame that follows is stored: `PLAIN`, or `SEALED` to
the agent's public key (`seal.pub` in the spool directory) when the event carries sensitive values,
which must never reach disk in plaintext.

The agent claims a file by renaming it while holding its flock; an emitter takes the same lock for
each write and, when it finds its path renamed away, starts a new file. So a record is either in the
file the agent claimed or in the next one, never torn between the two and never lost.

The agent writes `seal.pub` afresh at every start. A writer looks at it again (a stat, at most once a
second) and seals to the new key when the file changed, so a long-running service follows the agent's
key rather than the first one it read (which a group member could have planted before the agent
first started).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

from auditship.ondisk.files import make_private_dirs, write_all
from shipper.records import encode_record
from shipper.spool_seal import Sealer, SealUnavailableError

PLAIN = b"\x00"
SEALED = b"\x01"
SUFFIX = ".spool"
PUBLIC_KEY_NAME = "seal.pub"
KEY_CHECK_INTERVAL_S = 1.0
"""How often a writer that seals looks whether `seal.pub` changed."""


class SpoolWriter:
    """Appends an emitter's records to its spool file.

    create: make the directory when it is missing (a user's own spool); the installed agent's is made at
    install, with its mode, never by a service. max_bytes and keep_free: bounds for a spool on a small
    filesystem (the overflow spool on the runtime directory's tmpfs): this file grows to at most
    max_bytes, and no write leaves less than keep_free (a fraction) of the filesystem free. clock: a
    monotonic clock in seconds, for when to look at `seal.pub` again.
    """

    def __init__(
        self,
        directory: Path,
        emitter_id: str,
        *,
        create: bool = True,
        max_bytes: int | None = None,
        keep_free: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self._create = create
        self._max_bytes = max_bytes
        self._keep_free = keep_free
        # A random part the agent never publishes (an emitter id travels in each of its frames): another
        # member of the group, who may open a file whose name it knows, cannot find this one.
        self.path = directory / f"{emitter_id}.{os.urandom(16).hex()}{SUFFIX}"
        self._fd: int | None = None
        self._sealer: Sealer | None = None
        self._clock = clock
        self._key_checked = 0.0
        # seal.pub's device, inode, mtime and size when the sealer's key was read from it.
        self._key_file: tuple[int, int, int, int] | None = None

    def write(self, frames: list[tuple[bytes, bool]]) -> None:
        """Append frames (`(frame bytes, has sensitive values)`) durably enough to survive this process.

        Raises OSError when the directory cannot be written (a full disk: ENOSPC) or a bound would be
        passed, and SealUnavailableError for a sensitive frame that cannot be sealed; nothing of the call
        is written then: a write the disk cut short is cut off again, so that a later record never
        follows a torn one.
        """
        data = b"".join(encode_record(self._stored(frame, sensitive)) for frame, sensitive in frames)
        fd = self._locked_fd()
        try:
            size = os.fstat(fd).st_size
            self._check_bounds(size, len(data))
            try:
                write_all(fd, data)
            except OSError:
                os.ftruncate(fd, size)
                raise
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _check_bounds(self, size: int, adding: int) -> None:
        if self._max_bytes is not None and size + adding > self._max_bytes:
            raise OSError(errno.ENOSPC, f"{self.path}: at its bound of {self._max_bytes} bytes")
        if self._keep_free:
            fs = os.statvfs(self.directory)
            if (fs.f_bavail * fs.f_frsize - adding) < self._keep_free * fs.f_blocks * fs.f_frsize:
                raise OSError(
                    errno.ENOSPC, f"{self.directory}: would leave less than {self._keep_free:.0%} free"
                )

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _stored(self, frame: bytes, sensitive: bool) -> bytes:
        if not sensitive:
            return PLAIN + frame
        return SEALED + self._agent_sealer().seal(frame)

    def _agent_sealer(self) -> Sealer:
        """The sealer of the agent's current key: read again when `seal.pub` has changed (looked at
        once a second at most). Until a first key is read, SealUnavailableError; after, a key file
        that is gone or unreadable for a moment leaves the last key in use."""
        now = self._clock()
        if self._sealer is not None and now < self._key_checked + KEY_CHECK_INTERVAL_S:
            return self._sealer
        self._key_checked = now
        path = self.directory / PUBLIC_KEY_NAME
        try:
            with path.open("rb") as file:
                status = os.fstat(file.fileno())
                key_file = (status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size)
                if self._sealer is None or key_file != self._key_file:
                    self._sealer, self._key_file = Sealer(file.read()), key_file
        except OSError as exc:
            if self._sealer is None:
                raise SealUnavailableError(f"no agent key at {path}") from exc
        except ValueError as exc:
            if self._sealer is None:
                raise SealUnavailableError(f"{path}: {exc}") from exc
        return self._sealer

    def _locked_fd(self) -> int:
        """The fd of our spool file, locked, re-opened when the agent has claimed the old one."""
        for _ in range(8):
            if self._fd is None:
                if self._create:
                    make_private_dirs(self.directory)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
                # Group-readable whatever the service's umask, and of the directory's group (the agent's:
                # set here for a directory without the setgid bit): the agent reads it as a member of
                # that group; other members cannot list the directory to find it.
                os.fchmod(self._fd, 0o640)
                group = self.directory.stat().st_gid
                if os.fstat(self._fd).st_gid != group:
                    with contextlib.suppress(PermissionError):  # not a member: the agent's own spool
                        os.fchown(self._fd, -1, group)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                if self.path.stat().st_ino == os.fstat(self._fd).st_ino:
                    return self._fd
            except FileNotFoundError:
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self.close()
        raise OSError(f"{self.path}: renamed away on every attempt to write")
