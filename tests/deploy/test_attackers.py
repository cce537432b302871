"""Another local user in the agent's group attacks the audit trail of a service (tests/deploy/hosting.py
makes the users; CI runs as root, elsewhere these are skipped). The attacker can reach the intake, as
any service of the host can: what it sends is stamped with its own uid, cannot pass as a service
`[intake.identities]` does not give it, cannot make the service's events count as repeats, and a flood
of it is bounded and counted."""

from __future__ import annotations

import json
import pwd
import subprocess
import time
from pathlib import Path
from typing import Any

import msgspec

from tests.agentproc import file_events
from tests.deploy.hosting import AGENT_TOML, ATTACKER_USER, SERVICE_USER, Host
from tests.waiting import wait_for

# The service: emits one event (claiming to be root's: a sender is the agent's to say), waits until it
# is confirmed, prints its emitter id and pid, waits for a line on stdin (the attacker's turn), emits
# argv[2] - 1 more and prints its counters once flush() says all are confirmed (bounded: 30 s).
VICTIM = """
import json, os, sys, time
from shipper import AuditEvent, AuditEventType, emit, get_emitter
from shipper.event import Sender
service, count = sys.argv[1], int(sys.argv[2])
emitter = get_emitter()
def send(n):
    emit(AuditEvent(event_type=AuditEventType.DATA_READ, service_name=service, details={"n": n},
                    sender=Sender(uid=0, user="root")))
send(0)
deadline = time.monotonic() + 30
while not emitter.flush(1) and time.monotonic() < deadline:
    pass
print(json.dumps({"emitter": emitter.id, "pid": os.getpid()}), flush=True)
sys.stdin.readline()
for n in range(1, count):
    send(n)
flushed = emitter.flush(1)
while not flushed and time.monotonic() < deadline + 30:
    flushed = emitter.flush(1)
print(json.dumps({"flushed": flushed, "confirmed": emitter.stats.confirmed}), flush=True)
"""
# The attacker: argv[3] frames built by hand under emitter id argv[1], seqs from argv[2] two apart (each
# its own interval of the dedupe set), tx 0, for service argv[4], sent in batches of 100 as fast as the
# socket takes them; the close waits at most 30 s for them to leave.
ATTACKER = """
import sys, zmq
from shipper import endpoint
from shipper.event import AuditEvent, AuditEventType
from shipper.wire import Frame, encode_batch, frame_encoder
emitter_id, first, count, service = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
frames = [
    frame_encoder.encode(Frame(emitter_id, first + 2 * n, 0, AuditEvent(
        event_type=AuditEventType.DATA_DELETE, service_name=service, details={"forged": n})))
    for n in range(count)
]
context = zmq.Context()
push = context.socket(zmq.PUSH)
push.connect(endpoint.intake_endpoint())
for start in range(0, count, 100):
    push.send(encode_batch(frames[start : start + 100]))
push.close(linger=30000)
context.term()
print("sent", flush=True)
"""

# The eavesdropper: says hello on the confirmation socket under the victim's emitter id argv[1], prints
# "listening", and once a line comes on stdin prints how many messages it heard (bounded: it reads for
# at most 2 s more).
EAVESDROPPER = """
import sys, time, zmq
from shipper import endpoint
from shipper.wire import Hello, frame_encoder
context = zmq.Context()
dealer = context.socket(zmq.DEALER)
dealer.connect(endpoint.confirm_endpoint(endpoint.intake_endpoint()))
dealer.send(frame_encoder.encode(Hello(sys.argv[1])))
print("listening", flush=True)
sys.stdin.readline()
dealer.send(frame_encoder.encode(Hello(sys.argv[1])))
heard, deadline = 0, time.monotonic() + 2
while time.monotonic() < deadline:
    if dealer.poll(100):
        dealer.recv()
        heard += 1
print(heard, flush=True)
"""


def _uid(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def _events(host: Host, service: str) -> list[dict[str, Any]]:
    return [e for e in file_events(host.data) if e.get("service_name") == service]


def _attack(host: Host, emitter_id: str, first: int, count: int, service: str) -> float:
    """Run the attacker to its end; how long it took."""
    started = time.monotonic()
    attacker = host.python_as(ATTACKER_USER, ATTACKER, emitter_id, str(first), str(count), service)
    out, err = attacker.communicate(timeout=120)
    assert attacker.returncode == 0 and out.strip() == "sent", err
    return time.monotonic() - started


def _victim(host: Host, service: str, count: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    victim = host.python_as(SERVICE_USER, VICTIM, service, str(count))
    assert victim.stdout is not None
    line = victim.stdout.readline()
    assert line, victim.communicate(timeout=60)[1]
    return victim, json.loads(line)


def _finish(victim: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = victim.communicate("go\n", timeout=120)
    assert victim.returncode == 0, err
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def _rejects(host: Host) -> list[dict[str, Any]]:
    return [
        msgspec.json.decode(line)
        for path in sorted((host.data / "rejects").glob("*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


def test_each_event_carries_the_uid_gid_and_pid_of_the_process_that_sent_it_not_what_it_claims(
    host: Host,
) -> None:
    """The service claims to be root in its events; the agent stores the kernel's word: its uid, gid,
    user name and pid (the executable only when the agent may read it: here it may not)."""
    host.start_agent()
    victim, hello = _victim(host, "stamped", 3)
    report = _finish(victim)
    assert (report["flushed"], report["confirmed"]) == (True, 3)
    events = wait_for(lambda: len(_events(host, "stamped")) == 3 and _events(host, "stamped"), 30, "3 events")
    service = pwd.getpwnam(SERVICE_USER)
    for event in events:
        sender = event["sender"]
        assert sender.pop("executable", None) in (None, str(Path(host.installs.service).resolve()))
        assert sender == {
            "uid": service.pw_uid,
            "gid": service.pw_gid,
            "pid": hello["pid"],
            "user": SERVICE_USER,
        }


def test_a_user_not_given_a_service_in_intake_identities_cannot_send_as_it(host: Host) -> None:
    """`payments` is the service user's. The attacker's events as `payments` (and as `billing`, nobody's)
    are rejected with a reason naming the attacker and the service, and counted; the service's arrive."""
    host.config.write_text(AGENT_TOML + f'[intake.identities]\n{SERVICE_USER} = ["payments"]\n')
    host.start_agent()
    victim, _ = _victim(host, "payments", 11)
    _attack(host, "attacker-1", 1, 5, "payments")
    _attack(host, "attacker-2", 1, 5, "billing")
    report = _finish(victim)
    assert (report["flushed"], report["confirmed"]) == (True, 11)
    wait_for(lambda: len(_events(host, "payments")) >= 11, 30, "the service's 11 events")
    wait_for(lambda: host.intake().counters["identity_mismatches"] >= 10, 30, "10 mismatches counted")
    payments = _events(host, "payments")
    assert sorted(e["details"]["n"] for e in payments) == list(range(11))
    assert {e["sender"]["uid"] for e in payments} == {_uid(SERVICE_USER)}
    assert not _events(host, "billing")
    reasons = [r["reason"] for r in _rejects(host)]
    assert len(reasons) == 10
    assert sum(f"({ATTACKER_USER})" in r and "as service 'payments'" in r for r in reasons) == 5
    assert sum(f"({ATTACKER_USER})" in r and "as service 'billing'" in r for r in reasons) == 5


def test_frames_of_another_user_under_the_victims_emitter_id_cannot_make_its_events_repeats(
    host: Host,
) -> None:
    """The attack of issue 13: 4,200 frames under the victim's emitter id, seqs far ahead and two apart.
    On the shared (emitter, seq) set they made the victim's next events repeats (1 of 11 stored while
    its emitter counted 11 confirmed). Now they are the attacker's own, stamped with its uid, and the
    victim's 11 are all stored."""
    host.start_agent()
    victim, hello = _victim(host, "victim", 11)
    _attack(host, hello["emitter"], 1000, 4200, "victim")
    report = _finish(victim)
    assert (report["flushed"], report["confirmed"]) == (True, 11)
    wait_for(lambda: len(_events(host, "victim")) >= 11 + 4200, 60, "the victim's and the forged events")
    events = _events(host, "victim")
    stored = sorted(e["details"]["n"] for e in events if "n" in e["details"])
    assert stored == list(range(11))
    forged = [e for e in events if "forged" in e["details"]]
    assert len(forged) == 4200
    assert {e["sender"]["uid"] for e in forged} == {_uid(ATTACKER_USER)}


def test_a_flood_from_one_user_is_bounded_and_counted_and_the_others_are_not_held_back(host: Host) -> None:
    """At 100 frames/s (burst 200) for each sender, the attacker's 5,000 frames as fast as it can: at most
    the burst plus the rate over the attack's time are stored, the rest are counted as rate_limited,
    the intake is the same process, and the service's 11 events all arrive."""
    host.config.write_text(AGENT_TOML + "[intake]\nsender_rate = 100\nsender_burst = 200\n")
    host.start_agent()
    intake_pid = host.intake().pid
    victim, _ = _victim(host, "bystander", 11)
    elapsed = _attack(host, "flood", 1, 5000, "flood")
    report = _finish(victim)
    assert (report["flushed"], report["confirmed"]) == (True, 11)
    counters = wait_for(
        lambda: (c := host.intake().counters)["rate_limited"] + len(_events(host, "flood")) >= 5000 and c,
        30,
        "every flood frame stored or counted",
    )
    stored = len(_events(host, "flood"))
    assert stored + counters["rate_limited"] == 5000
    assert stored <= 200 + 100 * (elapsed + 1), (stored, elapsed)
    assert sorted(e["details"]["n"] for e in _events(host, "bystander")) == list(range(11))
    assert host.intake().pid == intake_pid
    assert not _rejects(host), "a refused flood frame costs a count, not a reject record"


def test_another_user_who_says_hello_with_the_victims_emitter_id_hears_none_of_its_confirmations(
    host: Host,
) -> None:
    """Confirmations are addressed: they go only to connections of the run's owner that asked for the
    emitter id. The attacker, knowing the id, asks for it; the victim's 11 events are confirmed to the
    victim, and the attacker hears nothing."""
    host.start_agent()
    victim, hello = _victim(host, "overheard", 11)
    eavesdropper = host.python_as(ATTACKER_USER, EAVESDROPPER, hello["emitter"])
    assert eavesdropper.stdout is not None
    assert eavesdropper.stdout.readline().strip() == "listening", eavesdropper.communicate(timeout=30)[1]
    report = _finish(victim)
    assert (report["flushed"], report["confirmed"]) == (True, 11)
    out, err = eavesdropper.communicate("go\n", timeout=60)
    assert eavesdropper.returncode == 0, err
    assert out.strip() == "0"
