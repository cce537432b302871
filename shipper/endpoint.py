"""Where the agent listens and where emitters spill, agreed on by both without talking to each other.

Two kinds of host:
- **An installed agent** (the systemd unit, docs/deploy.md): sockets in `/run/auditship`, spool in
  `/var/spool/auditship`. A host has one when any of its marks exists: that runtime directory, that
  spool directory (made at install by tmpfiles.d, so it is there after a reboot before the agent is),
  the unit file, or `/etc/auditship/agent.toml` (`AUDITSHIP_INSTALL_MARKS` replaces this list: paths
  separated by `:`, empty for none, as the test suite sets it). Every service on it, whatever its
  user, aims there, and spills there while the agent is down: the spool survives a reboot and holds
  the key to seal to.
- **No installed agent** (a laptop, a test): sockets in `$XDG_RUNTIME_DIR/auditship`, else
  `/tmp/auditship-<uid>` when it is this user's own, else `~/.cache/auditship`; the spool is the
  `spool` link the agent makes beside its sockets.

`AUDITSHIP_RUNTIME_DIR`, `AUDITSHIP_ENDPOINT` (ipc:// or tcp://) and `AUDITSHIP_SPOOL_DIR` override.
An agent's own places (its data directory, and its runtime directory and endpoint when its config
names them) are resolved here too, so that a service starting one (shipper.embedded) finds them as the
agent does: `AUDITSHIP_DATA_DIR` overrides the data directory.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import stat
from pathlib import Path

log = logging.getLogger("auditship.endpoint")
_TMP = Path("/tmp")
SYSTEM_RUNTIME_DIR = Path("/run/auditship")
SYSTEM_SPOOL_DIR = Path("/var/spool/auditship")
OVERFLOW_NAME = "overflow"
_INSTALL_MARKS = (
    SYSTEM_RUNTIME_DIR,
    SYSTEM_SPOOL_DIR,
    Path("/etc/systemd/system/audit-agent.service"),
    Path("/lib/systemd/system/audit-agent.service"),
    Path("/usr/lib/systemd/system/audit-agent.service"),
    Path("/etc/auditship/agent.toml"),
)


def agent_runtime_dir(configured: str) -> Path:
    """An agent's runtime directory: `AUDITSHIP_RUNTIME_DIR`, else the one its config names, else the
    default (runtime_dir)."""
    return Path(os.environ.get("AUDITSHIP_RUNTIME_DIR") or configured or runtime_dir()).absolute()


def agent_intake_endpoint(configured: str, runtime: Path) -> str:
    """An agent's intake endpoint: `AUDITSHIP_ENDPOINT`, else the one its config names, else ipc in its
    runtime directory."""
    return os.environ.get("AUDITSHIP_ENDPOINT") or configured or intake_endpoint(runtime)


def agent_installed() -> bool:
    """Whether this host has an installed agent (see the module's docstring), running or not."""
    return any(mark.exists() for mark in install_marks())


def install_marks() -> tuple[Path, ...]:
    """The paths whose existence says an agent is installed: `AUDITSHIP_INSTALL_MARKS` (separated by
    `:`; set but empty, none) when set, else the installed agent's runtime and spool directories, unit
    and config file."""
    given = os.environ.get("AUDITSHIP_INSTALL_MARKS")
    if given is None:
        return _INSTALL_MARKS
    return tuple(Path(mark) for mark in given.split(os.pathsep) if mark)


def runtime_dir() -> Path:
    explicit = os.environ.get("AUDITSHIP_RUNTIME_DIR")
    if explicit:
        return Path(explicit)
    if agent_installed():
        return SYSTEM_RUNTIME_DIR
    return user_runtime_dir()


def user_runtime_dir() -> Path:
    """This user's own runtime directory, for an agent that is not the host's (an embedded one):
    `$XDG_RUNTIME_DIR/auditship`, else `/tmp/auditship-<uid>` if it is ours (made by us, or found as a
    directory we own that no one else may write), else `~/.cache/auditship`. Another user who made
    the /tmp one first could otherwise take our events, answer for the agent and steer our spool."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "auditship"
    shared = _TMP / f"auditship-{os.getuid()}"
    if _ours(shared):
        return shared
    log.warning(
        "%s is not this user's own directory (made by another user, or a link); using ~/.cache", shared
    )
    return Path.home() / ".cache" / "auditship"


def _ours(directory: Path) -> bool:
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    status = directory.lstat()
    return stat.S_ISDIR(status.st_mode) and status.st_uid == os.getuid() and not status.st_mode & 0o022


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


def is_loopback(endpoint: str) -> bool:
    """Whether a tcp:// endpoint's host is this host's loopback (127.0.0.0/8, ::1, `localhost`), which
    only local processes reach. Any other host, a name included (what it resolves to can change), an
    interface name or `*`, is not."""
    host = endpoint.removeprefix("tcp://").rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def control_endpoint(runtime: Path) -> str:
    return f"ipc://{runtime / 'control.sock'}"


def spool_dir(intake: str) -> Path:
    """The emitter's spill directory: `AUDITSHIP_SPOOL_DIR`; else the installed agent's spool when the
    endpoint is in its runtime directory; else `spool` beside an ipc socket (a link the agent points
    at its spool); else `spool` in the runtime directory."""
    explicit = os.environ.get("AUDITSHIP_SPOOL_DIR")
    if explicit:
        return Path(explicit)
    if intake.startswith("ipc://"):
        directory = Path(intake[len("ipc://") :]).parent
        return SYSTEM_SPOOL_DIR if directory == SYSTEM_RUNTIME_DIR else directory / "spool"
    return runtime_dir() / "spool"


def overflow_dir(intake: str) -> Path:
    """Where an emitter spills when its spool cannot take more (a full disk): `overflow` in the
    runtime directory, a tmpfs on a systemd host, so not the disk that filled up. The agent makes it
    and ingests it as it does the spool."""
    if intake.startswith("ipc://"):
        return Path(intake[len("ipc://") :]).parent / OVERFLOW_NAME
    return runtime_dir() / OVERFLOW_NAME


def agent_absent(intake: str) -> bool:
    """True when nothing listens on an ipc endpoint (no socket file, or nobody accepting on it, as after
    a kill -9), so an emitter spills at once instead of waiting for a connection that cannot come.
    False when something listens, or when it cannot tell (tcp)."""
    if not intake.startswith("ipc://"):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(intake[len("ipc://") :])
    except (FileNotFoundError, ConnectionRefusedError):
        return True
    except OSError:
        return False  # e.g. permission denied: something is there; ZeroMQ's own error is the one to see
    finally:
        probe.close()
    return False
