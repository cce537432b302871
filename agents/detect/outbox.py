"""The way alerts go back into the agent: frames in a spool file of the detector's own, which the intake
picks up like any emitter's spill file (within `intake.spool_scan_interval_s`), validates and appends.

A spool file rather than a socket: it is durable before the detector moves its cursor, needs no
intake to be up, and needs no confirmation protocol. Its sender is the agent's own user (the file's
owner), its frames carry the detector's emitter id, and a frame sent again after a restart has the same
seq (alert.py), so the intake stores each alert once.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from auditship.agents.detect.alert import EMITTER_ID
from auditship.agents.durable import fsync_directory
from shipper.spool_writer import SpoolWriter


class Outbox:
    def __init__(self, spool: Path) -> None:
        # The agent's spool exists (the supervisor prepares it, with its mode); a missing one is an
        # error the worker retries, not a directory to make with another mode.
        self._writer = SpoolWriter(spool, EMITTER_ID, create=False)
        self.pending: list[bytes] = []
        self._unsynced = False

    def add(self, frame: bytes) -> None:
        self.pending.append(frame)

    def flush(self) -> int:
        """Write what is pending to the spool file; how many. OSError (nothing written) when it cannot."""
        if not self.pending:
            return 0
        self._writer.write([(frame, False) for frame in self.pending])
        written = len(self.pending)
        self.pending.clear()
        self._unsynced = True
        return written

    def sync(self) -> None:
        """Make what was written survive a power cut: before the cursor moves past the events the alerts
        are about. A file the intake has claimed since is past needing it."""
        if not self._unsynced:
            return
        path = self._writer.path
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_directory(path.parent)
        self._unsynced = False

    def close(self) -> None:
        self._writer.close()
