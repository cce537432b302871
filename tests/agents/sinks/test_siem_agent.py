"""The SIEM sink in a real agent: isolation from the file sink, a misbehaving SIEM, dead letters and
`audit-agent redeliver`, with real emitters, a real agent in subprocesses and a real HTTP server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from shipper.emitter import Emitter
from shipper.event import AuditEvent
from tests.agentproc import AgentDirs, RunningAgent, file_events
from tests.producers import numbered_event
from tests.siem_server import API_KEY, TOKEN, FakeSiem, ServedSiem
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


def agent_config(siem_url: str, siem: str) -> str:
    return f"""
[wal]
fsync = "never"
segment_bytes = 65536
[supervisor]
stats_interval_s = 0.2
[sinks.file]
fsync = false
[sinks.siem]
enabled = true
endpoint = "{siem_url}"
batch_size = 50
flush_interval_s = 0.05
timeout_s = 1.0
{siem}
"""


@pytest.fixture
def served() -> Iterator[ServedSiem]:
    """A fake SIEM that the test starts when it wants it up."""
    served = ServedSiem(FakeSiem())
    yield served
    served.stop()


def emit(name: str, count: int) -> list[AuditEvent]:
    emitter = Emitter()
    events = [numbered_event(name, number) for number in range(count)]
    for event in events:
        emitter.emit(event)
    assert emitter.flush(30), emitter.stats
    emitter.close()
    return events


def dead_letters(dirs: AgentDirs) -> list[dict[str, object]]:
    path = dirs.data / "deadletters" / "siem.jsonl"
    return [msgspec.json.decode(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def test_with_the_siem_down_the_file_gets_everything_and_the_wal_keeps_the_siems_backlog(
    dirs: AgentDirs, served: ServedSiem
) -> None:
    """The SIEM refuses connections throughout: the file sink delivers all 3,000 events while the SIEM
    sink retries; the WAL keeps every segment for it; when the SIEM comes back it gets them all."""
    config = agent_config(served.url, f'format = "splunk_hec"\napi_key = "{TOKEN}"')
    agent = RunningAgent(dirs, config).start()
    try:
        events = emit("iso", 3_000)
        wait_for(lambda: len(file_events(dirs.data)) >= 3_000, 60, "3,000 events in the file")
        wait_for(lambda: agent.counters("sink:siem").get("retries", 0) >= 3, 30, "the SIEM sink retrying")
        siem_counters = agent.counters("sink:siem")
        assert siem_counters["delivered"] == 0 and siem_counters["committed"] == 0, siem_counters
        # Counters reach the supervisor at most every stats_interval_s: the file's may come after the
        # SIEM sink's third retry.
        wait_for(lambda: agent.counters("sink:file").get("delivered") == 3_000, 30, "the file sink's count")
        segments = sorted(int(path.stem) for path in (dirs.data / "wal").glob("*.wal"))
        assert len(segments) > 1 and segments[0] <= 1, segments  # the oldest record is still there

        served.start()
        wait_for(lambda: len(served.siem.hec_events) >= 3_000, 60, "the backlog in the SIEM")
        ids = [envelope["event"]["event_id"] for envelope in served.siem.hec_events]
        assert ids == [event.event_id for event in events]
    finally:
        agent.stop()


def test_a_misbehaving_siem_gets_every_event_and_dead_letters_hold_exactly_the_refused_ones(
    dirs: AgentDirs, served: ServedSiem
) -> None:
    """503s, a 429 with Retry-After, a response slower than the timeout, throttled bulk items and items
    refused for good: in the end the index has every event but the refused, each once, and the dead
    letters hold exactly the refused; the 429's Retry-After was waited out."""
    siem = served.siem
    events = [numbered_event("flaky", number) for number in range(600)]
    refused = {event.event_id for number, event in enumerate(events) if number % 97 == 5}
    siem.refuse_ids = refused
    siem.throttle_ids = {event.event_id: 1 for event in events[100:110]}
    siem.answer_next(2, 503, body={"error": "unavailable"})
    siem.answer_next(1, 429, retry_after="2", body={"error": "slow down"})
    siem.slow_next(4, 0.0)
    siem.slow_next(1, 2.0)  # the fifth request times out (timeout_s = 1) and is sent again
    served.start()
    config = agent_config(served.url, f'format = "elasticsearch"\napi_key = "{API_KEY}"')
    agent = RunningAgent(dirs, config).start()
    try:
        emitter = Emitter()
        for event in events:
            emitter.emit(event)
        assert emitter.flush(30)
        emitter.close()
        wait_for(lambda: len(siem.docs) + len(dead_letters(dirs)) >= 600, 60, "every event settled")
        assert sorted(siem.doc_event_ids) == sorted({event.event_id for event in events} - refused)
        letters = dead_letters(dirs)
        assert {letter["event"]["event_id"] for letter in letters} == refused  # type: ignore[index]
        assert len(letters) == len(refused)
        assert all("mapper_parsing_exception" in str(letter["reason"]) for letter in letters)
        wait_for(lambda: agent.counters("sink:siem").get("dead_lettered") == len(refused), 10, "the counter")
        after_429 = next(i for i, seen in enumerate(siem.requests) if seen.status == 429) + 1
        gap = siem.requests[after_429].at - siem.requests[after_429 - 1].at
        assert gap >= 1.9, f"retried {gap:.2f}s after a Retry-After of 2s"
        assert siem.requests[4].batch_id == siem.requests[5].batch_id, "the timed-out request, sent again"
    finally:
        agent.stop()


def test_a_bad_token_dead_letters_every_event_and_redeliver_sends_them_once_the_token_is_fixed(
    dirs: AgentDirs, served: ServedSiem
) -> None:
    served.start()
    bad = agent_config(served.url, 'format = "splunk_hec"\napi_key = "wrong-token"')
    agent = RunningAgent(dirs, bad).start()
    try:
        events = emit("token", 200)
        wait_for(lambda: agent.counters("sink:siem").get("dead_lettered") == 200, 30, "200 dead letters")
        # The sinks go at their own pace: the file's may finish after the SIEM's dead letters.
        wait_for(lambda: len(file_events(dirs.data)) == 200, 30, "200 events in the file")
    finally:
        agent.stop()
    assert served.siem.hec_events == []
    assert all("HTTP 403" in str(letter["reason"]) for letter in dead_letters(dirs))

    fixed: Path = dirs.config_file
    fixed.write_text(agent_config(served.url, f'format = "splunk_hec"\napi_key = "{TOKEN}"'))
    result = subprocess.run(
        [sys.executable, "-m", "auditship.agents", "redeliver", "siem", "--config", str(fixed)],
        env={**os.environ, **dirs.env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "200 dead letters offered, 200 delivered" in result.stdout
    ids = [envelope["event"]["event_id"] for envelope in served.siem.hec_events]
    assert ids == [event.event_id for event in events]
    assert dead_letters(dirs) == []
