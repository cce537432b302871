"""Who sent a frame, from the kernel, and which service names `[intake.identities]` lets them use.

On a Unix socket libzmq reads the peer's credentials (SO_PEERCRED) when the connection is made and
appends them to each message's `Peer-Address` property: `<host>:<uid>:<gid>:<pid>` (libzmq
stream_engine; "localhost:1001:1001:4242"). They are the connecting process's, which the process cannot
choose, so they are what the agent stamps on the events (shipper.event.Sender), never a field of the
frame. A spool file's sender is its owner and group, read with fstat from the descriptor the intake
reads (spool_pickup), so a name swapped in between cannot lend another user's identity. Over TCP the
property is the peer's IP address only: no identity (None), though the IP still keys its rate limit.
"""

from __future__ import annotations

import pwd
from collections.abc import Mapping
from pathlib import Path

from shipper.event import Sender

MAX_CACHED = 4096
"""Senders kept per kind; the cache is emptied when full (a new pid per connection is the only growth)."""


class Senders:
    """Sender records, built once per connection (its peer address) or spool owner, not per event: the
    user name and the executable cost a system call or two each."""

    def __init__(self) -> None:
        self._by_peer: dict[str, Sender | None] = {}
        self._by_owner: dict[tuple[int, int], Sender] = {}

    def of_peer(self, peer_address: str | None) -> Sender | None:
        """The sender of a message on the ipc intake, from its `Peer-Address`; None when it carries
        no credentials (a libzmq built without SO_PEERCRED). Only for ipc: an IPv6 address ending in
        three numeric groups would read as credentials."""
        if peer_address is None:
            return None
        sender = self._by_peer.get(peer_address, _MISSING)
        if sender is _MISSING:
            if len(self._by_peer) >= MAX_CACHED:
                self._by_peer.clear()
            sender = self._by_peer[peer_address] = _from_peer(peer_address)
        return sender

    def of_owner(self, uid: int, gid: int) -> Sender:
        """The sender of a spooled frame: its file's owner and group, no process."""
        sender = self._by_owner.get((uid, gid))
        if sender is None:
            if len(self._by_owner) >= MAX_CACHED:
                self._by_owner.clear()
            sender = self._by_owner[uid, gid] = Sender(uid=uid, gid=gid, user=_user(uid))
        return sender


_MISSING = Sender()


def _from_peer(peer_address: str) -> Sender | None:
    parts = peer_address.rsplit(":", 3)
    if len(parts) != 4 or not all(part.isdigit() for part in parts[1:]):
        return None
    uid, gid, pid = (int(part) for part in parts[1:])
    return Sender(uid=uid, gid=gid, pid=pid, user=_user(uid), executable=_executable(pid, uid))


def _user(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _executable(pid: int, uid: int) -> str | None:
    """/proc/PID/exe, when readable and the process is still the uid's: a pid whose process has exited
    may already be another's (/proc/PID is owned by the process's effective uid)."""
    try:
        process = Path(f"/proc/{pid}")
        if process.stat().st_uid != uid:
            return None
        return str((process / "exe").readlink())
    except OSError:
        return None


class Identities:
    """`[intake.identities]`: the service names each sender (uid) may use; empty allows everything."""

    def __init__(self, allowed: Mapping[int, frozenset[str]], flag: bool) -> None:
        self.allowed = allowed
        self.flag = flag
        """Keep a mismatching event, marked (Sender.mismatch), instead of rejecting it."""

    def refusal(self, sender: Sender | None, service: str | None) -> str | None:
        """Why `sender` may not send as `service`, or None when it may (or nothing is configured)."""
        if not self.allowed:
            return None
        if sender is None or sender.uid is None:
            return (
                f"service {service!r} from a sender without a kernel identity (TCP): "
                "intake.identities allows only known uids"
            )
        if service is not None and service in self.allowed.get(sender.uid, ()):
            return None
        return f"sender {describe(sender)} may not send as service {service!r} (intake.identities)"


def describe(sender: Sender) -> str:
    """`uid 1002 (mallory) pid 4242`, for reasons and log lines."""
    name = f" ({sender.user})" if sender.user else ""
    pid = f" pid {sender.pid}" if sender.pid is not None else ""
    return f"uid {sender.uid}{name}{pid}"
