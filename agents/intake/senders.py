"""Who sent a frame, from the kernel, and which service names `[intake.identities]` lets them use.

On a Unix socket libzmq reads the peer's credentials (SO_PEERCRED) when the connection is made and
appends them to each message's `Peer-Address` property: `<host>:<uid>:<gid>:<pid>` (libzmq
stream_engine; "localhost:1001:1001:4242"). They are the connecting process's, which the process cannot
choose, so they are what the agent stamps on the events (shipper.event.Sender), never a field of the
frame. A spool file's sender is its owner and group, read with fstat from the descriptor the intake
reads (spool_pickup), so a name swapped in between cannot lend another user's identity. Over TCP with
CURVE the sender is the client key the connection proved it holds: the intake's ZAP handler
(curve_auth) names it, and libzmq hands that name with every message as its `User-Id` property; the
Sender has no uid, and its `user` is the key's name. Over plain TCP (loopback, `intake.curve = false`)
there is no identity (None), and the peer's IP address keys its rate limit.
"""

from __future__ import annotations

import pwd
from collections.abc import Mapping
from pathlib import Path

from shipper.event import Sender

Principal = int | str | None
"""Whom a frame counts as from, for the dedupe index, confirmation runs and rate limits: a uid (ipc,
spool), a CURVE client key's name (TCP), or None (plain TCP: anyone who reaches it)."""

MAX_CACHED = 4096
"""Senders kept per kind; the cache is emptied when full (a new pid per connection is the only growth)."""


class Senders:
    """Sender records, built once per connection (its peer address) or spool owner, not per event: the
    user name and the executable cost a system call or two each."""

    def __init__(self) -> None:
        self._by_peer: dict[str, Sender | None] = {}
        self._by_owner: dict[tuple[int, int], Sender] = {}
        self._by_key: dict[str, Sender] = {}

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

    def of_key(self, name: str) -> Sender:
        """The sender of a message on a CURVE TCP intake: the name of the client key it connected with."""
        sender = self._by_key.get(name)
        if sender is None:
            if len(self._by_key) >= MAX_CACHED:
                self._by_key.clear()
            sender = self._by_key[name] = Sender(user=name)
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


def principal(sender: Sender | None) -> Principal:
    """The uid of a sender the kernel named, the key name of one CURVE named (it has no uid), or None."""
    if sender is None:
        return None
    return sender.uid if sender.uid is not None else sender.user


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
    """`[intake.identities]`: the service names each sender (a uid, or a CURVE key's name) may use;
    empty allows everything."""

    def __init__(self, allowed: Mapping[int | str, frozenset[str]], flag: bool) -> None:
        self.allowed = allowed
        self.flag = flag
        """Keep a mismatching event, marked (Sender.mismatch), instead of rejecting it."""

    def refusal(self, sender: Sender | None, service: str | None) -> str | None:
        """Why `sender` may not send as `service`, or None when it may (or nothing is configured)."""
        if not self.allowed:
            return None
        who = principal(sender)
        if sender is None or who is None:
            return (
                f"service {service!r} from a sender without a kernel identity or a CURVE key (plain TCP): "
                "intake.identities allows only known uids and CURVE keys"
            )
        if service is not None and service in self.allowed.get(who, ()):
            return None
        return f"sender {describe(sender)} may not send as service {service!r} (intake.identities)"


def describe(sender: Sender) -> str:
    """`uid 1002 (mallory) pid 4242`, or `key 'billing-host'` (CURVE), for reasons and log lines."""
    if sender.uid is None:
        return f"key {sender.user!r}"
    name = f" ({sender.user})" if sender.user else ""
    pid = f" pid {sender.pid}" if sender.pid is not None else ""
    return f"uid {sender.uid}{name}{pid}"
