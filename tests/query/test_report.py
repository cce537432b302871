"""`audit-query report`: what an auditor asks for under one framework, from the lake: access by user,
failed access, privilege and configuration changes, events flagged incomplete, retention against the
floor, and integrity from verify; in table, Markdown, CSV and JSON, and from the logger."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shipper.config import AuditConfig, AuditContext
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType, AuditOutcome
from shipper.logger import AuditLogger
from tests.agentproc import QUICK_CONFIG, agent_running
from tests.query.lakes import write_events
from tests.waiting import wait_for

NOW = datetime.now(UTC).replace(microsecond=0)
T, R = AuditEventType, AuditOutcome


def hours_ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def tagged(kind: AuditEventType, hours: float, tags: list[str], **fields: object) -> AuditEvent:
    return AuditEvent(event_type=kind, timestamp=hours_ago(hours), compliance=tags, **fields)  # type: ignore[arg-type]


EVENTS = [
    tagged(T.DATA_READ, 50, ["HIPAA"], user_id="dr-who", resource_type="patient_record", resource_id="456"),
    tagged(T.DATA_READ, 40, ["hipaa"], user_id="dr-who", resource_type="patient_record", resource_id="457"),
    tagged(T.DATA_READ, 30, ["HIPAA"], user_id="dr-who", resource_type="patient_record", resource_id="456"),
    tagged(
        T.DATA_UPDATE,
        20,
        ["HIPAA"],
        user_id="nurse",
        resource_type="patient_record",
        resource_id="456",
        outcome=R.FAILURE,
    ),
    tagged(T.DATA_READ, 20, ["SOX"], user_id="accountant", resource_type="ledger", resource_id="1"),
    tagged(T.AUTH_FAILURE, 10, ["HIPAA"], user_id="mallory", source_ip="203.0.113.9", outcome=R.FAILURE),
    tagged(T.AUTH_FAILURE, 9, ["HIPAA"], user_id="mallory", source_ip="203.0.113.9", outcome=R.FAILURE),
    tagged(
        T.API_REQUEST, 8, ["HIPAA"], user_id="eve", source_ip="10.0.0.5", status_code=403, outcome=R.FAILURE
    ),
    tagged(T.CONFIGURATION_CHANGE, 7, ["HIPAA"], user_id="admin", action="set_mfa", resource_type="setting"),
    tagged(
        T.ACCESS_GRANTED,
        6,
        ["HIPAA"],
        user_id="admin",
        action="grant_role",
        resource_type="user",
        resource_id="nurse",
    ),
    tagged(T.DATA_EXPORT, 5, ["PCI"], user_id="ops", details={"compliance_missing": ["origin", "resource"]}),
    tagged(T.DATA_READ, 24 * 40, ["HIPAA"], user_id="old", resource_type="patient_record", resource_id="1"),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report") / "data"
    write_events(root / "lake", enumerate(EVENTS, start=1))
    return root


def report(cli, data: Path, *args: object) -> dict:
    result = cli("report", "--data-dir", data, "--since", "7d", "--format", "json", *args)
    assert result.status == 0, result.err
    return json.loads(result.out)


def rows(found: dict, section: str) -> list[dict]:
    return next(s for s in found["sections"] if s["name"] == section)["rows"]


def test_a_hipaa_report_covers_the_events_tagged_hipaa_in_the_range(cli, data) -> None:
    """Access by user and resource type (not the SOX ledger read, not the read 40 days ago), failed
    access by user, address and type (the auth failures, the 403, the failed update), the configuration
    change and the role grant, one row each; no incomplete section outside PCI."""
    found = report(cli, data, "--framework", "HIPAA")
    assert found["framework"] == "hipaa" and found["scope"] == "events tagged HIPAA"
    access = [
        (r["user_id"], r["resource_type"], r["events"], r["resources"], r["not_succeeded"])
        for r in rows(found, "access")
    ]
    assert access == [("dr-who", "patient_record", 3, 2, 0), ("nurse", "patient_record", 1, 1, 1)]
    failed = [(r["user_id"], r["source_ip"], r["event_type"], r["events"]) for r in rows(found, "failed")]
    assert failed == [
        ("mallory", "203.0.113.9", "auth_failure", 2),
        ("eve", "10.0.0.5", "api_request", 1),
        ("nurse", "", "data_update", 1),
    ]
    changes = [(r["user_id"], r["event_type"], r["action"], r["resource_id"]) for r in rows(found, "changes")]
    assert changes == [
        ("admin", "configuration_change", "set_mfa", ""),
        ("admin", "access_granted", "grant_role", "nurse"),
    ]
    assert "incomplete" not in [section["name"] for section in found["sections"]]


def test_retention_status_compares_the_floor_with_the_config_and_finds_the_oldest_event(
    cli, data, tmp_path
) -> None:
    """The defaults (365 days) are below HIPAA's 2192; a config at the floor is ok. The oldest event is
    the one 40 days old, whatever the range."""
    found = rows(report(cli, data, "--framework", "hipaa"), "retention")[0]
    assert (found["floor_days"], found["retention_days"], found["oldest_age_days"]) == (2192, 365, 40)
    assert found["status"] == "BELOW FLOOR: retention.days is 365, the floor 2192"
    assert found["oldest_event"] == (NOW - timedelta(days=40)).isoformat().replace("+00:00", "Z")
    config = tmp_path / "agent.toml"
    config.write_text(f'data_dir = "{data}"\ncompliance = ["hipaa"]\n[retention]\ndays = 2200\n')
    result = cli("report", "--config", config, "--framework", "hipaa", "--since", "7d", "--format", "json")
    everything = json.loads(result.out)
    assert everything["scope"] == "every event (the agent's compliance names it)"
    assert rows(everything, "retention")[0]["status"] == "ok: retention.days reaches the floor"
    # Every event is covered now: the SOX ledger read too.
    assert ("accountant", "ledger") in [
        (r["user_id"], r["resource_type"]) for r in rows(everything, "access")
    ]


def test_a_pci_report_lists_the_events_flagged_incomplete(cli, data) -> None:
    found = report(cli, data, "--framework", "pci")
    assert rows(found, "incomplete") == [
        {"service_name": "", "missing": '["origin","resource"]', "events": 1}
    ]
    assert rows(found, "retention")[0]["searchable_days"] == 92


def test_integrity_is_not_checked_without_digests_and_says_why(cli, data) -> None:
    found = rows(report(cli, data, "--framework", "sox"), "integrity")[0]
    assert found["verified"] is None and found["notes"].startswith("not checked: ")
    only_lake = cli(
        "report", "--lake", data / "lake", "--framework", "sox", "--since", "7d", "--format", "json"
    )
    assert "only the lake is known" in only_lake.out


def test_markdown_csv_and_table_formats_and_the_limit(cli, data) -> None:
    """Markdown: a heading per section and a pipe table; CSV: a block per section, each with its header
    and the section's name first; table: titled tables. --limit cuts a section and says so."""
    args = ("report", "--data-dir", data, "--framework", "hipaa", "--since", "7d")
    markdown = cli(*args, "--format", "markdown").out
    assert markdown.startswith("# HIPAA compliance report, ")
    assert (
        "## Failed access\n\n| user_id | source_ip | event_type | events | first | last |\n|---|" in markdown
    )
    blocks = cli(*args, "--format", "csv").out.split("\n\n")
    assert [block.split(",", 2)[1] for block in blocks][:2] == ["user_id", "user_id"]
    access = list(csv.reader(io.StringIO(blocks[0])))
    assert access[1][:4] == ["access", "dr-who", "patient_record", "3"]
    table = cli(*args, "--format", "table", "--limit", "1").out
    assert "== Failed access (the first 1 rows only (--limit))" in table
    assert "10.0.0.5" not in table.split("== Failed access")[1].split("==")[0]


def test_an_unknown_framework_is_a_usage_error(cli, data) -> None:
    result = cli("report", "--data-dir", data, "--framework", "iso27001", "--since", "7d")
    assert result.status == 2 and "--framework: invalid choice: 'iso27001'" in result.err


def test_the_logger_returns_the_report_as_json_prints_it(data) -> None:
    config = AuditConfig()
    config.data_dir = data
    logger = AuditLogger(config, AuditContext(service_name="auditor"), emit=lambda event: None)
    found = asyncio.run(logger.compliance_report("hipaa", start_time=NOW - timedelta(days=7)))
    assert [section["name"] for section in found["sections"]] == [
        "access",
        "failed",
        "changes",
        "retention",
        "integrity",
    ]
    assert found["sections"][0]["rows"][0]["user_id"] == "dr-who"


@pytest.mark.slow
def test_a_report_over_a_running_agents_data_verifies_its_digests() -> None:
    """Events through a real agent with compliance = ["hipaa"]: every event is covered, and integrity is
    verify's verdict over the agent's signed digests."""
    from auditship.query.cli import main

    config = (
        'compliance = ["hipaa"]\n[retention]\ndays = 2192\n'
        + QUICK_CONFIG
        + "[sinks.parquet]\nflush_interval_s = 0.2\n"
        + "[integrity]\ndigest_interval_s = 0.5\ndigest_min_interval_s = 0.1\n"
    )
    with agent_running(config) as agent:
        emitter = Emitter()
        try:
            for n in range(5):
                emitter.emit(
                    AuditEvent(
                        event_type=T.DATA_READ,
                        user_id="dr-who",
                        resource_type="patient_record",
                        resource_id=str(n),
                    )
                )
            assert emitter.flush(10)
        finally:
            emitter.close(0)
        wait_for(
            lambda: list((agent.dirs.data / "lake").glob("date=*/service=*/part-*.parquet")),
            20,
            "a part in the lake",
        )
        out = io.StringIO()
        import contextlib

        def verified() -> dict | None:
            out.seek(0)
            out.truncate()
            with contextlib.redirect_stdout(out):
                main(
                    [
                        "report",
                        "--config",
                        str(agent.dirs.config_file),
                        "--framework",
                        "hipaa",
                        "--since",
                        "1h",
                        "--format",
                        "json",
                    ]
                )
            found = json.loads(out.getvalue())
            integrity = rows(found, "integrity")[0]
            return found if integrity["verified"] and integrity["objects"] else None

        found = wait_for(verified, 20, "the report with the agent's digests verified")
        assert rows(found, "access")[0]["events"] == 5 and found["scope"].startswith("every event")
