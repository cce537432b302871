"""Search by a sensitive value without decrypting it: a real agent stores a blind index in the envelopes
of the fields `[encryption] blind_index` names, the lake holds no plaintext, and `audit-query search
--sensitive` and `search_events(sensitive=...)` find exactly the events holding the value."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from auditship.agents.crypto import decrypt_sensitive
from auditship.ondisk.blind import BLIND_KEY
from auditship.ondisk.envelope import blind_of
from auditship.ondisk.keys import FieldKeys
from auditship.ondisk.lake_layout import live_parts
from auditship.query.cli import main
from auditship.query.errors import QueryError
from shipper import AuditConfig, AuditContext, AuditLogger
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType
from tests.agentproc import QUICK_CONFIG, RunningAgent, agent_running
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

CONFIG = (
    QUICK_CONFIG
    + """
[sinks.parquet]
flush_interval_s = 0.05
[encryption]
blind_index = ["ssn", "patient_id"]
"""
)
SSN = "123-45-6789"
# message -> sensitive values: one ssn four times (with spaces, in fullwidth digits: normalising makes
# them equal), another ssn, the ssn's value as a patient id, and as a field without a blind index.
EVENTS: dict[str, dict[str, Any]] = {
    "a1": {"ssn": SSN},
    "a2": {"ssn": SSN, "note": "x"},
    "a3": {"ssn": f"  {SSN} "},
    "a4": {"ssn": "\uff11\uff12\uff13-45-6789"},  # fullwidth 123
    "b": {"ssn": "987-65-4321"},
    "p": {"patient_id": SSN},
    "n": {"note": SSN},
}


@pytest.fixture(scope="module")
def agent() -> Iterator[RunningAgent]:
    with agent_running(CONFIG) as running:
        emitter = Emitter()
        for message, sensitive in EVENTS.items():
            emitter.emit(
                AuditEvent(
                    event_type=AuditEventType.DATA_READ,
                    message=message,
                    timestamp=datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
                    sensitive=sensitive,
                )
            )
        emitter.close(timeout=30)
        wait_for(lambda: len(found(running)) == len(EVENTS), 60, "every event in the lake")
        yield running


def found(agent: RunningAgent, **filters: Any) -> list[AuditEvent]:
    """search_events over the agent's lake, as a service's AuditLogger calls it."""
    config = AuditConfig()
    config.data_dir = agent.dirs.data
    logger = AuditLogger(config, AuditContext(service_name="auditor"), emit=lambda event: None)

    async def collect() -> list[AuditEvent]:
        return [event async for event in logger.search_events(keys_dir=agent.dirs.keys, **filters)]

    try:
        return asyncio.run(collect())
    except QueryError:  # no lake yet, while the fixture waits
        return []


def searched(agent: RunningAgent, capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    """The messages of the events `audit-query search --config agent.toml ARGS` prints."""
    status = main(
        ["search", "--config", str(agent.dirs.config_file), "--format", "json", "--limit", "0", *args]
    )
    out = capsys.readouterr().out
    assert status == 0
    return sorted(msgspec.json.decode(line)["message"] for line in out.splitlines())


def test_the_lake_holds_no_plaintext_and_indexes_only_the_configured_fields(agent: RunningAgent) -> None:
    assert (agent.dirs.keys / BLIND_KEY).stat().st_mode & 0o777 == 0o600
    parts = [path.read_bytes() for path in live_parts(agent.dirs.data / "lake")]
    assert parts
    for part in parts:
        for value in (SSN, "987-65-4321", "45-6789"):
            assert value.encode() not in part
    events = {event.message: event for event in found(agent)}
    assert blind_of(events["a1"].sensitive["ssn"]) is not None
    assert blind_of(events["p"].sensitive["patient_id"]) is not None
    assert blind_of(events["n"].sensitive["note"]) is None
    assert decrypt_sensitive(events["a3"], FieldKeys.load(agent.dirs.keys)).sensitive == {"ssn": f"  {SSN} "}


def test_search_finds_exactly_the_events_of_one_value(
    agent: RunningAgent, capsys: pytest.CaptureFixture[str]
) -> None:
    """Normalised equal values match; the same value in another field, or in one without an index, not."""
    assert searched(agent, capsys, "--sensitive", f"ssn={SSN}") == ["a1", "a2", "a3", "a4"]
    assert searched(agent, capsys, "--sensitive", "ssn=987-65-4321") == ["b"]
    assert searched(agent, capsys, "--sensitive", f"patient_id={SSN}") == ["p"]
    assert searched(agent, capsys, "--sensitive", f"note={SSN}") == []
    assert searched(agent, capsys, "--sensitive", f"ssn={SSN}", "--sensitive", "note=x") == []
    assert searched(agent, capsys, "--sensitive", "ssn=000-00-0000") == []


def test_search_events_takes_the_same_values(agent: RunningAgent) -> None:
    messages = sorted(event.message for event in found(agent, sensitive={"ssn": SSN.upper()}))
    assert messages == ["a1", "a2", "a3", "a4"]


def test_a_search_without_the_key_or_with_a_bad_option_is_a_usage_error(
    agent: RunningAgent, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    lake = str(agent.dirs.data / "lake")
    assert main(["search", "--lake", lake, "--sensitive", f"ssn={SSN}"]) == 2
    assert "needs the agent's keys_dir" in capsys.readouterr().err
    assert main(["search", "--lake", lake, "--keys-dir", str(tmp_path), "--sensitive", f"ssn={SSN}"]) == 2
    assert f"{tmp_path / BLIND_KEY}: no blind index key here" in capsys.readouterr().err
    assert main(["search", "--lake", lake, "--sensitive", "ssn"]) == 2
    assert "is not NAME=VALUE" in capsys.readouterr().err
