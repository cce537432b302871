"""Where the agent listens, agreed on by the emitter and the agent without talking to each other.

The runtime directory holds the agent's sockets (`intake.sock`, `confirm.sock`, `control.sock`) and a
`spool` link to the agent's spool directory. It is `AUDITSHIP_RUNTIME_DIR` when set, else
`/run/auditship` for root or when it exists (the system agent's, which services of any user find
there), else `$XDG_RUNTIME_DIR/auditship`, else `/tmp/auditship-<uid>`.
`AUDITSHIP_ENDPOINT` overrides the intake endpoint (ipc:// or tcp://).
"""

from __future__ import annotations

import os
from pathlib import Path


def runtime_dir() -> Path:
    explicit = os.environ.get("AUDITSHIP_RUNTIME_DIR")
    if explicit:
        return Path(explicit)
    system = Path("/run/auditship")
    if os.geteuid() == 0 or system.is_dir():
        return system
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "auditship"
    return Path(f"/tmp/auditship-{os.getuid()}")


def intake_endpoint(runtime: Path | None = None) -> str:
    explicit = os.environ.get("AUDITSHIP_ENDPOINT")
    if explicit and runtime is None:
        return explicit
    return f"ipc://{(runtime or runtime_dir()) / 'intake.sock'}"


def confirm_endpoint(intake: str) -> str:
    """The confirmation socket beside an intake endpoint: `confirm.sock` in the same directory for
    ipc, the next port for tcp."""
    if intake.startswith("ipc://"):
        return f"ipc://{Path(intake[len('ipc://') :]).with_name('confirm.sock')}"
    if intake.startswith("tcp://"):
        host, _, port = intake[len("tcp://") :].rpartition(":")
        return f"tcp://{host}:{int(port) + 1}"
    raise ValueError(f"unsupported endpoint {intake!r}: expected ipc://PATH or tcp://HOST:PORT")


def control_endpoint(runtime: Path) -> str:
    return f"ipc://{runtime / 'control.sock'}"


def spool_dir(intake: str) -> Path:
    """The emitter's spill directory: `AUDITSHIP_SPOOL_DIR`, else `spool` beside an ipc socket (a link
    the agent points at its data directory), else `spool` in the runtime directory."""
    explicit = os.environ.get("AUDITSHIP_SPOOL_DIR")
    if explicit:
        return Path(explicit)
    if intake.startswith("ipc://"):
        return Path(intake[len("ipc://") :]).parent / "spool"
    return runtime_dir() / "spool"
