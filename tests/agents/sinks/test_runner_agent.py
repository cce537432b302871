"""The sink runner in a real agent: records no sink can take already in the WAL stop no worker, and a drain
that cannot finish ends at its deadline with the backlog kept."""

from __future__ import annotations

import msgspec
import pytest

from auditship.agents.config import WalConfig
from auditship.agents.wal import WriteAheadLog
from auditship.agents.wal.cursor import cursor_path, read_cursor
from shipper.emitter import Emitter
from shipper.wire import Frame, frame_encoder
from tests.agentproc import AgentDirs, RunningAgent, file_events
from tests.agents.sinks.entries import event
from tests.producers import numbered_event
from tests.siem_server import TOKEN, FakeSiem, ServedSiem
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


def config(siem_url: str = "", drain_timeout_s: float = 30.0) -> str:
    siem = f"""
[sinks.siem]
enabled = true
format = "splunk_hec"
endpoint = "{siem_url}"
api_key = "{TOKEN}"
flush_interval_s = 0.05
"""
    return f"""
[wal]
fsync = "never"
[supervisor]
stats_interval_s = 0.2
drain_timeout_s = {drain_timeout_s}
[sinks.file]
fsync = false
[sinks.parquet]
enabled = true
flush_interval_s = 0.1
{siem if siem_url else ""}"""


def raw_frame(number: int, **overrides: object) -> bytes:
    """A frame with fields an AuditEvent built in Python could not carry, as another emitter may send."""
    fields = msgspec.to_builtins(event(number)) | overrides
    return msgspec.msgpack.encode(["faulty-emitter", number, 0, fields])


def test_records_no_sink_can_take_already_in_the_wal_stop_no_worker(dirs: AgentDirs) -> None:
    """A WAL written before the intake normalised timestamps: a naive time, years 1 and 9999 at extreme
    offsets, a msgpack extension value in `details`, a record that is no event. The agent starts on it:
    every worker keeps running without a restart, each sink commits past every record, the file holds every
    event it can hold, and what a sink could not write is in its dead letters with the reason."""
    payloads = [
        frame_encoder.encode(Frame("faulty-emitter", 1, 0, event(1))),
        raw_frame(2, timestamp="2026-03-10T12:00:00"),
        raw_frame(3, timestamp="0001-01-01T00:00:00+14:00"),
        raw_frame(4, timestamp="9999-12-31T23:59:59-14:00"),
        raw_frame(5, details={"blob": msgspec.msgpack.Ext(5, b"\x00")}),
        msgspec.msgpack.encode(["faulty-emitter", 6, 0, "not an event"]),
        frame_encoder.encode(Frame("faulty-emitter", 7, 0, event(7))),
    ]
    wal = WriteAheadLog(dirs.data / "wal", WalConfig(fsync="never"), ["file", "parquet"])
    wal.append(payloads)
    wal.close()
    agent = RunningAgent(dirs, config()).start()
    try:

        def past_every_record() -> bool:
            return all(agent.counters(sink).get("committed") == 7 for sink in ("sink:file", "sink:parquet"))

        wait_for(past_every_record, 30, "the file and parquet sinks past seq 7")
        assert [line["wal_seq"] for line in file_events(dirs.data)] == [1, 2, 3, 4, 7]
        letters = (dirs.data / "deadletters" / "file.jsonl").read_bytes().splitlines()
        assert [msgspec.json.decode(line)["seq"] for line in letters] == [5]
        for sink in ("sink:file", "sink:parquet"):
            counters = agent.counters(sink)
            assert counters["undecodable"] == 1, (sink, counters)
            assert counters["delivered"] + counters["dead_lettered"] == 6, (sink, counters)
        status = agent.status()
        assert status is not None
        assert all(w.state == "running" and w.restarts == 0 for w in status.workers), status
        assert agent.terminate(60) == 0
    finally:
        agent.stop()


def test_a_drain_that_cannot_finish_stops_at_its_deadline_and_keeps_the_backlog_in_the_wal(
    dirs: AgentDirs,
) -> None:
    """The SIEM asks for 60 s when SIGTERM comes with a 3 s drain timeout: the agent does not ask it again,
    stops at the deadline with exit 0 and a line saying the backlog stays, the SIEM's cursor where it was.
    The next agent delivers that backlog."""
    served = ServedSiem(FakeSiem()).start()
    try:
        served.siem.answer_next(1, 503, retry_after="60", body={"text": "Server is busy", "code": 9})
        agent = RunningAgent(dirs, config(served.url, drain_timeout_s=3.0)).start()
        try:
            emitter = Emitter()
            events = [numbered_event("drain", number) for number in range(50)]
            for audit_event in events:
                emitter.emit(audit_event)
            assert emitter.flush(30), emitter.stats
            emitter.close()
            wait_for(lambda: agent.counters("sink:siem").get("retries") == 1, 30, "the SIEM sink's backoff")
            wait_for(lambda: len(file_events(dirs.data)) == 50, 30, "50 events in the file")
            assert agent.terminate(60) == 0, agent.log()
        finally:
            agent.stop()
        log = agent.log()
        assert "worker sink:siem has not drained within supervisor.drain_timeout_s (3s)" in log
        assert "sink siem stopped at WAL seq 0 with events after it not delivered" in log
        assert len(served.siem.requests) == 1
        assert (read_cursor(cursor_path(dirs.data / "wal", "siem")) or 0) == 0

        again = RunningAgent(dirs, config(served.url)).start()
        try:
            wait_for(lambda: len(served.siem.hec_events) == 50, 30, "the backlog in the SIEM")
            assert again.terminate(60) == 0
        finally:
            again.stop()
        delivered = [envelope["event"]["event_id"] for envelope in served.siem.hec_events]
        assert delivered == [audit_event.event_id for audit_event in events]
    finally:
        served.stop()
