"""Senders from libzmq's Peer-Address and spool owners, and what [intake.identities] allows them."""

from __future__ import annotations

import os
import pwd

from auditship.agents.intake.senders import Identities, Senders
from shipper.event import Sender


def test_an_ipc_peer_address_gives_uid_gid_pid_user_and_executable() -> None:
    """This process as its own peer: libzmq writes `localhost:UID:GID:PID` on a Unix socket."""
    uid, gid, pid = os.getuid(), os.getgid(), os.getpid()
    sender = Senders().of_peer(f"localhost:{uid}:{gid}:{pid}")
    assert sender == Sender(
        uid=uid, gid=gid, pid=pid, user=pwd.getpwuid(uid).pw_name, executable=os.readlink("/proc/self/exe")
    )


def test_a_tcp_peer_address_is_no_identity() -> None:
    senders = Senders()
    assert senders.of_peer("127.0.0.1") is None
    assert senders.of_peer(None) is None


def test_a_pid_that_is_not_the_uid_s_process_gives_no_executable() -> None:
    """/proc/PID is another uid's (or the pid was reused): no executable is claimed for it."""
    sender = Senders().of_peer(f"localhost:{os.getuid() + 1}:0:{os.getpid()}")
    assert sender is not None and sender.executable is None


def test_a_spool_owner_is_a_sender_without_a_process() -> None:
    assert Senders().of_owner(0, 0) == Sender(uid=0, gid=0, user="root")


def test_identities_allow_the_listed_services_of_a_uid_and_nothing_else() -> None:
    identities = Identities({1001: frozenset({"payments-api"})}, flag=False)
    payments = Sender(uid=1001, user="payments")
    assert identities.refusal(payments, "payments-api") is None
    assert identities.refusal(payments, "billing") == (
        "sender uid 1001 (payments) may not send as service 'billing' (intake.identities)"
    )
    assert identities.refusal(Sender(uid=1002, pid=7), "payments-api") == (
        "sender uid 1002 pid 7 may not send as service 'payments-api' (intake.identities)"
    )
    assert "without a kernel identity" in (identities.refusal(None, "payments-api") or "")
    assert Identities({}, flag=False).refusal(None, "anything") is None
