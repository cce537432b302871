"""The intake as it runs in a real agent: no message, frame or event stops it or a sink after it. Each
bad one is refused with its reason (to rejects/), and the valid frames after it are appended and
delivered."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from auditship.agents.config import WalConfig
from auditship.agents.intake.checks import MAX_NESTING
from auditship.agents.wal import WriteAheadLog
from auditship.query.errors import QueryError
from auditship.query.filters import EventFilter
from auditship.query.search import search
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType, Sender
from shipper.wire import Frame, frame_encoder
from tests.agentproc import QUICK_CONFIG, AgentDirs, RunningAgent, agent_running, file_events
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

NO_LAKE = QUICK_CONFIG + "[sinks.parquet]\nenabled = false\n"


def rejects(data: Path) -> list[dict[str, Any]]:
    return [
        msgspec.json.decode(line)
        for path in sorted((data / "rejects").glob("*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


def nested(depth: int) -> bytes:
    """msgpack: `depth` arrays, one inside the other, around a nil."""
    return b"\x91" * depth + b"\xc0"


def raw_frame(seq: int, event: dict[str, Any]) -> bytes:
    """A frame built by hand, as a sender other than our emitter could send it (tx 0: not tracked)."""
    return msgspec.msgpack.encode(["raw-sender", seq, 0, {"event_type": "data_read", **event}])


def raw_frame_with(seq: int, details: bytes) -> bytes:
    """A frame whose event's `details` are the given msgpack bytes, inserted as they are."""
    head = msgspec.msgpack.encode(["raw-sender", seq, 0])
    event = b"\x82" + msgspec.msgpack.encode("event_type") + msgspec.msgpack.encode("data_read")
    return b"\x94" + head[1:] + event + msgspec.msgpack.encode("details") + details


def good_frame(seq: int) -> tuple[bytes, str]:
    event = AuditEvent(event_type=AuditEventType.DATA_READ, details={"n": seq})
    return frame_encoder.encode(Frame("good-sender", seq, 0, event)), event.event_id


def test_bad_messages_and_frames_of_every_kind_are_rejected_with_their_reason_and_the_intake_goes_on() -> (
    None
):
    """A 1 KB message nested 1,000 arrays deep, a frame whose event nests deeper than the decoder
    recurses, one nested past the intake's limit, garbage, a frame over max_frame_bytes, values JSON
    cannot hold, an emitter id off its pattern: each is a reject with its reason, the intake is the
    same process after them, and the valid frames between and after them are delivered."""
    config = NO_LAKE + "[intake]\nmax_frame_bytes = 4096\n"
    with agent_running(config) as agent:
        intake_pid = agent.worker_pid("intake")
        bad = [
            (nested(1000), "invalid frame: Expected `array` of at least length 4, got 1"),
            (raw_frame_with(1, b"\x81\xa1x" + nested(1000)), "invalid frame: nested too deep to decode"),
            (
                raw_frame_with(2, b"\x81\xa1x" + nested(MAX_NESTING + 5)),
                f"details: nested more than {MAX_NESTING} maps or lists deep",
            ),
            (b"\xc1" + bytes(range(256)), "invalid frame: MessagePack data is malformed"),
            (raw_frame(3, {"message": "x" * 5000}), "exceeds intake.max_frame_bytes=4096"),
            (
                raw_frame_with(4, b"\x81\xa1x\xd4\x05\x01"),
                "details: a value of type Ext, which JSON cannot hold",
            ),
            (
                raw_frame_with(5, b"\x81\xa1x\x81\x92\x01\x02\xa1v"),
                "details: a map key of type tuple, which JSON cannot hold",
            ),
            (
                raw_frame(6, {"status_code": "two hundred"}),
                "invalid frame: Expected `int | null`, got `str` - at `$[3].status_code`",
            ),
            (
                msgspec.msgpack.encode(["no id/", 7, 0, {"event_type": "data_read"}]),
                "invalid frame: Expected `str` matching regex '^[0-9A-Za-z_.-]+$' - at `$[0]`",
            ),
        ]
        good = [good_frame(n) for n in range(1, len(bad) + 2)]
        with zmq.Context() as context, context.socket(zmq.PUSH) as push:
            push.connect(agent.config.intake_endpoint)
            push.send(good[0][0])
            for (message, _), (frame, _) in zip(bad, good[1:], strict=True):
                push.send(message)
                push.send(frame)
            wait_for(lambda: len(file_events(agent.dirs.data)) >= len(good), 30, "every valid frame")
        assert [e["event_id"] for e in file_events(agent.dirs.data)] == [event_id for _, event_id in good]
        reasons = [r["reason"] for r in rejects(agent.dirs.data)]
        assert len(reasons) == len(bad), reasons
        for reason, (_, expected) in zip(reasons, bad, strict=True):
            assert expected in reason
        assert agent.worker_pid("intake") == intake_pid
        wait_for(lambda: agent.counters("intake").get("rejected") == len(bad), 30, "the reject counter")


def test_a_message_over_max_message_bytes_is_dropped_by_zeromq_and_the_intake_goes_on() -> None:
    """ZeroMQ drops a message larger than intake.max_message_bytes before allocating it and resets the
    sender's connection (ZMQ_MAXMSGSIZE). The intake is the same process, and a valid frame sent after
    the reset arrives."""
    config = NO_LAKE + "[intake]\nmax_frame_bytes = 4096\nmax_message_bytes = 65536\n"
    with agent_running(config) as agent:
        intake_pid = agent.worker_pid("intake")
        frame, event_id = good_frame(1)
        with zmq.Context() as context, context.socket(zmq.PUSH) as push:
            monitor = push.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            try:
                push.connect(agent.config.intake_endpoint)
                push.send(b"\x00" * 1_000_000)
                reset = (
                    monitor.poll(30_000) and recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
                )
            finally:
                push.disable_monitor()
                monitor.close(linger=0)
            assert reset, "the intake never reset the connection that sent the message"
            push.send(frame)
            wait_for(lambda: file_events(agent.dirs.data), 30, "the valid frame")
        assert [e["event_id"] for e in file_events(agent.dirs.data)] == [event_id]
        assert agent.worker_pid("intake") == intake_pid
        assert rejects(agent.dirs.data) == []


def lake_ids(agent: RunningAgent) -> list[str]:
    try:
        found = search(agent.dirs.data / "lake", EventFilter(), limit=None)
    except QueryError:  # no part yet
        return []
    return sorted(event.event_id for _, event in found)


def test_naive_and_unholdable_timestamps_stop_no_sink_and_later_events_reach_the_file_and_the_lake() -> None:
    """A naive timestamp through the public Emitter and from an older emitter's frame is taken as UTC;
    year 1 at +14:00 and year 9999 at -14:00 are refused at the intake with the reason; the extremes
    in UTC are delivered. The file and Parquet workers stay the same processes, and the events after
    all of them reach the file and the lake."""
    config = QUICK_CONFIG + "[sinks.parquet]\nenabled = true\nflush_interval_s = 0.2\n"
    with agent_running(config) as agent:
        sink_pids = {name: agent.worker_pid(name) for name in ("sink:file", "sink:parquet")}
        naive = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        emitter = Emitter()
        emitter.emit(
            AuditEvent(event_type=AuditEventType.DATA_READ, event_id="naive-emitted", timestamp=naive)
        )
        assert emitter.flush(10)
        frames = {
            "naive-raw": "2026-03-01T12:00:00",
            "year-1-utc": "0001-01-01T00:00:00Z",
            "year-9999-utc": "9999-12-31T23:59:59.999999Z",
            "year-1-plus-14": "0001-01-01T00:00:00+14:00",
            "year-9999-minus-14": "9999-12-31T23:59:59-14:00",
        }
        with zmq.Context() as context, context.socket(zmq.PUSH) as push:
            push.connect(agent.config.intake_endpoint)
            for seq, (event_id, timestamp) in enumerate(frames.items(), 1):
                push.send(raw_frame(seq, {"event_id": event_id, "timestamp": timestamp}))
            later = [AuditEvent(event_type=AuditEventType.DATA_READ, event_id=f"later-{n}") for n in range(3)]
            for event in later:
                emitter.emit(event)
            assert emitter.flush(10)
        emitter.close()
        delivered = sorted(
            ["naive-emitted", "naive-raw", "year-1-utc", "year-9999-utc", *(e.event_id for e in later)]
        )
        wait_for(
            lambda: sorted(str(e["event_id"]) for e in file_events(agent.dirs.data)) == delivered,
            30,
            "the accepted events in the file",
        )
        wait_for(lambda: lake_ids(agent) == delivered, 30, "the accepted events in the lake")
        times = {e["event_id"]: e["timestamp"] for e in file_events(agent.dirs.data)}
        assert times["naive-emitted"] == naive.isoformat() + "Z"
        assert times["naive-raw"] == "2026-03-01T12:00:00Z"
        reasons = [r["reason"] for r in rejects(agent.dirs.data)]
        assert len(reasons) == 2, reasons
        assert "timestamp 0001-01-01T00:00:00+14:00 is outside years 1-9999 in UTC" in reasons[0]
        assert "timestamp 9999-12-31T23:59:59-14:00 is outside years 1-9999 in UTC" in reasons[1]
        assert {name: agent.worker_pid(name) for name in sink_pids} == sink_pids


def test_a_wal_record_that_is_not_msgpack_is_skipped_by_the_dedupe_replay_and_the_records_after_it_count(
    dirs: AgentDirs,
) -> None:
    """A WAL record of garbage (`\\xc1...`) between two frames, met at start by the replay that rebuilds
    the dedupe index: counted (`wal_undecodable`) and logged, the intake starts (it used to exit at
    every start), and the frame after the garbage is still known: its resend is dropped as a repeat."""
    # As the intake stores a frame from this process: stamped with its uid, which keys the index.
    events = [
        AuditEvent(event_type=AuditEventType.DATA_READ, sender=Sender(uid=os.geteuid())) for _ in range(2)
    ]
    stored = [frame_encoder.encode(Frame("good-sender", n, 0, event)) for n, event in enumerate(events, 1)]
    wal = WriteAheadLog(dirs.data / "wal", WalConfig(fsync="never"), ["file"])
    wal.append([stored[0], b"\xc1not msgpack", stored[1]])
    wal.close()
    agent = RunningAgent(dirs, NO_LAKE).start()
    try:
        wait_for(lambda: agent.counters("intake").get("wal_undecodable") == 1, 30, "the record counted")
        assert "replaying the WAL into the dedupe index: 1 records undecodable, skipped" in agent.log()
        with zmq.Context() as context, context.socket(zmq.PUSH) as push:
            push.connect(agent.config.intake_endpoint)
            push.send(stored[1])
            wait_for(lambda: agent.counters("intake").get("repeats") == 1, 30, "the resend dropped")
        wait_for(lambda: len(file_events(dirs.data)) >= 2, 30, "the two frames in the file")
        assert [e["event_id"] for e in file_events(dirs.data)] == [event.event_id for event in events]
    finally:
        agent.stop()
