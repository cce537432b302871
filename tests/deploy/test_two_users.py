"""Deployed as docs/deploy.md says (tests/deploy/hosting.py): the agent as its own user, a service as
another user in the agent's group, the service started first, the agent down while it emits. Nothing is
lost, nothing is stored twice, and no sensitive value reaches a disk in clear.
"""

from __future__ import annotations

import grp
import json
from pathlib import Path

from tests.agentproc import file_events
from tests.deploy.hosting import GROUP, SECRET, SERVICE_USER, Host
from tests.waiting import wait_for

# The service: emits 1,000 events through the process-wide emitter, every tenth with a card number,
# then waits (bounded) until flush() says everything is confirmed or spooled, and prints its counters.
SERVICE = f"""
import json, sys, time
from shipper import AuditEvent, AuditEventType, emit, get_emitter
service = sys.argv[1]
for n in range(1000):
    sensitive = {{"card": "{SECRET}"}} if n % 10 == 0 else {{}}
    emit(AuditEvent(event_type=AuditEventType.DATA_READ, service_name=service, details={{"n": n}},
                    sensitive=sensitive))
deadline = time.monotonic() + float(sys.argv[2])
flushed = get_emitter().flush(1)
while not flushed and time.monotonic() < deadline:
    flushed = get_emitter().flush(1)
stats = get_emitter().stats
print(json.dumps({{"flushed": flushed, "spilled": stats.spilled, "dropped": stats.dropped,
                  "confirmed": stats.confirmed, "pending": stats.pending}}))
"""


def _delivered(host: Host, service: str) -> list[int]:
    return sorted(
        int(e["details"]["n"])  # type: ignore[index, call-overload]
        for e in file_events(host.data)
        if e.get("service_name") == service
    )


def _no_secret_in_clear(*directories: Path) -> None:
    for directory in directories:
        for path in directory.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), f"{path} holds a card number in clear"


def test_a_service_in_the_group_spools_while_the_agent_is_down_and_everything_arrives_once(host: Host):
    """The agent ran once (as at install: its key is in the spool), then stopped. A service of another
    user emits 1,000 events, 100 with a card number: all spool (sealed), the service exits. The agent
    comes back and delivers each event once; the card number is nowhere in clear."""
    host.start_agent()
    host.stop_agent()
    left = sorted(p.name for p in host.runtime.iterdir())
    assert left == ["overflow", "spool"], f"a clean stop leaves no socket or lock behind: {left}"
    service = host.python_as(SERVICE_USER, SERVICE, "payments", "10")
    out, err = service.communicate(timeout=120)
    assert service.returncode == 0, err
    report = json.loads(out)
    assert report == {"flushed": True, "spilled": 1000, "dropped": 0, "confirmed": 0, "pending": 0}, err
    spooled = [p for p in host.spool.iterdir() if p.suffix == ".spool"]
    assert spooled and all(p.stat().st_gid == grp.getgrnam(GROUP).gr_gid for p in spooled)
    host.start_agent()
    wait_for(lambda: len(_delivered(host, "payments")) >= 1000, 60, "1,000 events in the file sink")
    assert _delivered(host, "payments") == list(range(1000))
    host.stop_agent()
    _no_secret_in_clear(host.data, host.spool)


def test_a_service_started_before_the_agent_ever_ran_holds_what_it_cannot_seal_until_the_agent_is_up(
    host: Host,
):
    """No agent has ever run: no key to seal to. The service spools the 900 plain events, keeps the 100
    sensitive ones in memory, and sends them once the agent starts; all 1,000 arrive once."""
    service = host.python_as(SERVICE_USER, SERVICE, "billing", "90")
    wait_for(lambda: any(p.suffix == ".spool" for p in host.spool.iterdir()), 30, "the service's spool file")
    host.start_agent()
    out, err = service.communicate(timeout=120)
    assert service.returncode == 0, err
    report = json.loads(out)
    assert (report["flushed"], report["dropped"], report["pending"]) == (True, 0, 0), (report, err)
    wait_for(lambda: len(_delivered(host, "billing")) >= 1000, 60, "1,000 events in the file sink")
    assert _delivered(host, "billing") == list(range(1000))
    host.stop_agent()
    _no_secret_in_clear(host.data, host.spool)
