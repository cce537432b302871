"""A known set of events in a lake, for the audit-query tests, and a way to run the CLI in-process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditship.query.cli import main
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity
from tests.query.lakes import write_events

NOW = datetime.now(UTC).replace(microsecond=0)

T, S, R = AuditEventType, AuditSeverity, AuditOutcome  # R: the result, the event's outcome
# seq, hours ago, type, severity, outcome, user, service, resource, source ip, message
TABLE = [
    (1, 230, T.USER_LOGIN, S.INFO, R.SUCCESS, "alice", "billing", None, "10.0.0.1", "user_login success"),
    (2, 220, T.AUTH_FAILURE, S.MEDIUM, R.FAILURE, "mallory", "billing", None, "203.0.113.9", "bad password"),
    (3, 150, T.DATA_READ, S.INFO, R.SUCCESS, "alice", "records", "document:1", "10.0.0.1", "read document 1"),
    (
        4,
        100,
        T.DATA_UPDATE,
        S.LOW,
        R.SUCCESS,
        "bob",
        "records",
        "document:2",
        "10.0.0.2",
        "update document 2",
    ),
    (5, 72, T.API_REQUEST, S.HIGH, R.ERROR, "bob", "api", None, "10.0.0.2", "GET /orders 500"),
    (
        6,
        50,
        T.ACCESS_DENIED,
        S.MEDIUM,
        R.FAILURE,
        "mallory",
        "records",
        "document:1",
        "203.0.113.9",
        "Denied",
    ),
    (
        7,
        30,
        T.SECURITY_VIOLATION,
        S.CRITICAL,
        R.FAILURE,
        "mallory",
        "api",
        None,
        "203.0.113.9",
        "Many logins",
    ),
    (8, 20, T.USER_LOGIN, S.MEDIUM, R.FAILURE, "carol", "billing", None, "10.0.0.3", "user_login failure"),
    (9, 10, T.API_REQUEST, S.LOW, R.FAILURE, "carol", "api", None, "10.0.0.3", "POST /payments 403"),
    (
        10,
        5,
        T.DATA_EXPORT,
        S.HIGH,
        R.SUCCESS,
        "alice",
        "records",
        "report:q3",
        "10.0.0.1",
        "Quarterly EXPORT",
    ),
    (11, 2, T.HEARTBEAT, S.INFO, R.SUCCESS, None, None, None, None, "alive"),
    (
        12,
        1,
        T.PERMISSION_CHECK,
        S.INFO,
        R.UNKNOWN,
        "bob",
        "billing",
        "invoice:7",
        "10.0.0.2",
        "check invoice",
    ),
    (13, 0.5, T.CONFIGURATION_CHANGE, S.MEDIUM, R.SUCCESS, "carol", "api", None, "10.0.0.3", "Rate limits"),
]
ALL = [row[0] for row in reversed(TABLE)]
"""Every seq, newest first."""


def known_events(now: datetime = NOW) -> list[tuple[int, AuditEvent]]:
    """TABLE's events, each its hours before `now`."""
    events = []
    for seq, hours, kind, severity, outcome, user, service, resource, ip, message in TABLE:
        resource_type, _, resource_id = (resource or "").partition(":")
        events.append(
            (
                seq,
                AuditEvent(
                    event_type=kind,
                    event_id=f"{seq:032x}",
                    timestamp=now - timedelta(hours=hours),
                    severity=severity,
                    outcome=outcome,
                    message=message,
                    action=message.split()[0].lower(),
                    user_id=user,
                    source_ip=ip,
                    resource_type=resource_type or None,
                    resource_id=resource_id or None,
                    service_name=service,
                    status_code=int(message.split()[-1]) if kind == T.API_REQUEST else None,
                    details={"seq": seq},
                ),
            )
        )
    last = events[-1][1]
    last.changes = {"limit": {"from": 5, "to": 10}}
    last.sensitive = {"token": "aesgcm1:k1:AAAA"}
    last.compliance = ["SOX", "GDPR"]
    return events


def write_known(data: Path, now: datetime = NOW) -> Path:
    """A data directory whose lake holds TABLE (hours before `now`), written as two flushes; returns it."""
    events = known_events(now)
    write_events(data / "lake", events[:7])
    write_events(data / "lake", events[7:])
    return data


@pytest.fixture(scope="session")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The known lake, shared by the tests that only read it."""
    return write_known(tmp_path_factory.mktemp("known")) / "lake"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory of its own with the known lake, for a test that changes it."""
    return write_known(tmp_path / "data")


@dataclass
class Result:
    status: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """cli(*args) runs audit-query in this process; output is JSON Lines unless --format says otherwise."""

    def run(*args: object) -> Result:
        try:
            status = main([str(arg) for arg in args])
        except SystemExit as exc:  # argparse's usage errors
            status = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run
