"""The spine end to end: real emitters, a real agent in subprocesses, real sockets and files."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta

import msgspec
import pytest
import zmq

from shipper import endpoint as endpoints
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType
from shipper.listener import ConfirmationListener
from shipper.spool_writer import SpoolWriter
from shipper.wire import (
    Confirmation,
    Frame,
    encode_batch,
    frame_encoder,
)
from tests.agentproc import AgentDirs, RunningAgent, file_events
from tests.producers import numbered_event, produce
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

FAST = """
[wal]
fsync = "never"
[supervisor]
drain_timeout_s = 30.0
stats_interval_s = 0.2
[sinks.file]
fsync = false
"""


@pytest.fixture
def agent(dirs: AgentDirs) -> Iterator[RunningAgent]:
    running = RunningAgent(dirs, FAST).start()
    yield running
    running.stop()


def delivered_ids(dirs: AgentDirs) -> list[str]:
    return [str(event["event_id"]) for event in file_events(dirs.data)]


def run_producers(
    dirs: AgentDirs, names: list[str], count: int, **pacing: float
) -> dict[str, dict[str, int]]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(target=produce, args=(dirs.env(), name, count, results), kwargs=pacing)
        for name in names
    ]
    for process in processes:
        process.start()
    stats = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    return stats


def test_events_from_several_processes_arrive_once_each_in_each_producers_order(
    dirs: AgentDirs, agent: RunningAgent
) -> None:
    """Four producer processes emit 5,000 events each; the file holds each exactly once, in order.

    Order holds for what goes over the socket; a spilled event arrives when the spool is picked up, so
    the producers keep a pace (20,000 events/s each) that a loaded machine still takes without spilling.
    """
    names = [f"p{i}" for i in range(4)]
    stats = run_producers(dirs, names, 5_000, pace_every=100, pace_s=0.005)
    wait_for(lambda: len(file_events(dirs.data)) >= 20_000, 60, "20,000 events in the file")
    events = file_events(dirs.data)
    assert len(events) == 20_000
    for name in names:
        assert stats[name]["spilled"] == 0 and stats[name]["dropped"] == 0, stats[name]
        numbers = [e["details"]["n"] for e in events if e["user_id"] == name]  # type: ignore[index]
        assert numbers == list(range(5_000)), f"{name} out of order or incomplete"


def test_events_from_many_threads_of_one_process_arrive_once_each_in_each_threads_order(
    dirs: AgentDirs, agent: RunningAgent
) -> None:
    """Eight threads share the process's emitter; no event is lost or repeated, each thread's order holds."""
    emitter = Emitter()

    def thread_body(name: str) -> None:
        for number in range(1_000):
            emitter.emit(numbered_event(name, number))
            if number % 200 == 199:
                time.sleep(0.005)

    threads = [threading.Thread(target=thread_body, args=(f"t{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert emitter.flush(30)
    emitter.close()
    wait_for(lambda: len(file_events(dirs.data)) >= 8_000, 60, "8,000 events in the file")
    events = file_events(dirs.data)
    assert len(events) == 8_000
    assert emitter.stats.confirmed == 8_000
    for i in range(8):
        numbers = [e["details"]["n"] for e in events if e["user_id"] == f"t{i}"]  # type: ignore[index]
        assert numbers == list(range(1_000))


def test_agent_killed_with_sigkill_mid_stream_loses_and_repeats_nothing(dirs: AgentDirs) -> None:
    """Every agent process is SIGKILLed twice while producers emit; afterwards each event is there once."""
    agent = RunningAgent(dirs, FAST).start()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    names = ["k0", "k1", "k2"]
    producers = [
        context.Process(target=produce, args=(dirs.env(), name, 20_000, results), kwargs={"pace_s": 0.01})
        for name in names
    ]
    for process in producers:
        process.start()
    try:
        for _ in range(2):
            wait_for(lambda a=agent: a.counters("intake").get("appended", 0) > 2_000, 60, "events in")
            agent.kill_everything()
            time.sleep(0.3)
            agent = RunningAgent(dirs, FAST).start()
        stats = dict(results.get(timeout=180) for _ in producers)
        for process in producers:
            process.join(30)
        wait_for(lambda: len(delivered_ids(dirs)) >= 60_000, 120, "60,000 events in the file")
        # Spilled events come through the spool; give the intake's scan a moment, then count exactly.
        time.sleep(1.0)
        ids = delivered_ids(dirs)
        repeated = [i for i, n in Counter(ids).items() if n > 1]
        assert not repeated, f"{len(repeated)} events written twice"
        per_producer = Counter(e["user_id"] for e in file_events(dirs.data))
        assert per_producer == dict.fromkeys(names, 20_000), (per_producer, stats)
    finally:
        agent.stop()


def test_events_emitted_with_no_agent_spill_and_arrive_when_it_starts(dirs: AgentDirs) -> None:
    """With no agent, emit() spills to the spool; the agent ingests the spool when it starts."""
    emitter = Emitter()
    for number in range(300):
        emitter.emit(numbered_event("early", number))
    emitter.flush(0)
    assert emitter.stats.spilled == 300
    assert emitter.stats.sent == 0
    agent = RunningAgent(dirs, FAST).start()
    try:
        wait_for(lambda: len(file_events(dirs.data)) >= 300, 30, "the spilled events in the file")
        for number in range(300, 400):
            emitter.emit(numbered_event("early", number))
        assert emitter.flush(30), (emitter.stats, agent.status())
        wait_for(lambda: len(file_events(dirs.data)) >= 400, 30, "400 events in the file")
        numbers = sorted(e["details"]["n"] for e in file_events(dirs.data))  # type: ignore[index]
        assert numbers == list(range(400))
    finally:
        emitter.close()
        agent.stop()


def test_malformed_and_oversized_frames_are_rejected_with_a_reason_and_good_ones_arrive(
    dirs: AgentDirs,
) -> None:
    """Random bytes, a wrongly typed frame and an oversized frame go to rejects/; the good frames arrive."""
    agent = RunningAgent(dirs, FAST + "[intake]\nmax_frame_bytes = 4096\n").start()
    good = [numbered_event("good", n) for n in range(3)]
    frames = [
        frame_encoder.encode(Frame("sender-1", 1, 1, good[0])),
        os.urandom(200),
        msgspec.msgpack.encode(["sender-1", "two", 2, {"event_type": 7}]),
        frame_encoder.encode(Frame("sender-1", 2, 2, good[1])),
        frame_encoder.encode(
            Frame("sender-1", 3, 3, AuditEvent(event_type=AuditEventType.DATA_EXPORT, message="x" * 10_000))
        ),
        frame_encoder.encode(Frame("sender-1", 4, 4, good[2])),
    ]
    try:
        with zmq.Context() as context, context.socket(zmq.PUSH) as push:
            push.connect(agent.config.intake_endpoint)
            for frame in frames:
                push.send(frame)
            wait_for(lambda: len(file_events(dirs.data)) >= 3, 30, "the three good events")
        assert [e["event_id"] for e in file_events(dirs.data)] == [e.event_id for e in good]
        rejects = [
            msgspec.json.decode(line)
            for path in sorted((dirs.data / "rejects").glob("*.jsonl"))
            for line in path.read_bytes().splitlines()
        ]
        reasons = [r["reason"] for r in rejects]
        assert len(reasons) == 3, reasons
        assert all(datetime.fromisoformat(r["time"]).utcoffset() == timedelta(0) for r in rejects)
        assert "invalid frame" in reasons[0]
        assert "Expected `int`, got `str`" in reasons[1]
        assert "exceeds intake.max_frame_bytes=4096" in reasons[2]
        wait_for(lambda: agent.counters("intake").get("rejected") == 3, 30, "the reject counter")
    finally:
        agent.stop()


def test_a_batch_is_taken_frame_by_frame_and_a_spooled_frames_tx_is_not_counted(dirs: AgentDirs) -> None:
    """One message holding three frames gives three events and confirms transmissions 1-3. A frame
    spooled with tx 2 (a number a later batch reused) arrives, and the run goes on from 3 to 5."""
    agent = RunningAgent(dirs, FAST + "[intake]\nspool_scan_interval_s = 0.1\n").start()
    events = [numbered_event("batch", n) for n in range(6)]
    endpoint = agent.config.intake_endpoint
    try:
        with zmq.Context() as context, context.socket(zmq.PUSH) as push:
            listener = ConfirmationListener(context, endpoints.confirm_endpoint(endpoint), "sender-2", None)
            push.connect(endpoint)
            frames = [frame_encoder.encode(Frame("sender-2", n + 1, n + 1, events[n])) for n in range(3)]
            push.send(encode_batch(frames))
            wait_for(lambda: len(file_events(dirs.data)) >= 3, 30, "the batch's three events")
            SpoolWriter(endpoints.spool_dir(endpoint), "sender-2").write(
                [(frame_encoder.encode(Frame("sender-2", 4, 2, events[3])), False)]
            )
            wait_for(lambda: len(file_events(dirs.data)) >= 4, 30, "the spooled event")
            push.send(
                encode_batch([frame_encoder.encode(Frame("sender-2", n + 1, n, events[n])) for n in (4, 5)])
            )
            wait_for(lambda: len(file_events(dirs.data)) >= 6, 30, "the second batch")

            def confirmed_to_5() -> bool:
                listener.poll(100)
                return Confirmation(1, 5) in listener.received()

            wait_for(confirmed_to_5, 30, "a confirmation of transmissions 1 to 5")
            listener.close()
        assert sorted(e["details"]["n"] for e in file_events(dirs.data)) == list(range(6))  # type: ignore[index]
    finally:
        agent.stop()


def test_sigterm_drains_every_sink_and_exits_zero(dirs: AgentDirs) -> None:
    """SIGTERM right after a burst: the agent exits 0 and the file holds every confirmed event."""
    agent = RunningAgent(dirs, FAST).start()
    emitter = Emitter()
    for number in range(5_000):
        emitter.emit(numbered_event("drain", number))
    assert emitter.flush(30), emitter.stats
    assert agent.terminate(60) == 0
    assert len(file_events(dirs.data)) == 5_000
    emitter.close()


def test_a_sink_worker_killed_with_sigkill_is_restarted_and_resumes_from_its_cursor(
    dirs: AgentDirs, agent: RunningAgent
) -> None:
    """Killing the file sink's process loses nothing and writes nothing twice: it resumes at its cursor."""
    emitter = Emitter()
    for number in range(2_000):
        emitter.emit(numbered_event("resume", number))
    assert emitter.flush(30)
    wait_for(lambda: len(file_events(dirs.data)) >= 2_000, 30, "the first 2,000 events")
    first_pid = agent.worker_pid("sink:file")
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    for number in range(2_000, 4_000):
        emitter.emit(numbered_event("resume", number))
    assert emitter.flush(30)
    wait_for(lambda: agent.worker_pid("sink:file") not in (None, first_pid), 30, "a new file sink process")
    wait_for(lambda: len(file_events(dirs.data)) >= 4_000, 30, "all 4,000 events")
    status = agent.status()
    assert status is not None
    assert next(w.restarts for w in status.workers if w.name == "sink:file") == 1
    assert [e["details"]["n"] for e in file_events(dirs.data)] == list(range(4_000))  # type: ignore[index]
    emitter.close()


def test_a_sensitive_value_never_reaches_disk_in_plaintext_and_decrypts_with_the_key(
    dirs: AgentDirs, agent: RunningAgent
) -> None:
    """The sensitive value is in no file of the data dir (WAL, files, spool...), and the key decrypts it."""
    from auditship.agents.crypto.fields import decrypt_sensitive
    from auditship.agents.crypto.keyring import Keyring

    secret = "4111-1111-1111-1111-SECRET"
    emitter = Emitter()
    event = AuditEvent(event_type=AuditEventType.TRANSACTION, sensitive={"card_number": secret})
    emitter.emit(event)
    assert emitter.flush(30)
    wait_for(lambda: file_events(dirs.data), 30, "the event in the file")
    emitter.close()
    assert agent.terminate(60) == 0
    for path in dirs.data.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"plaintext in {path}"
    written = msgspec.convert(file_events(dirs.data)[0], AuditEvent)
    assert written.sensitive["card_number"] != secret
    assert decrypt_sensitive(written, Keyring.load_or_create(dirs.keys)).sensitive == {"card_number": secret}
