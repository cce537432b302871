"""The WAL in a real agent: its size bound holds under a flood of large frames and a large spool file,
the intake resumes by itself once the sinks catch up, and seqs are not issued twice after the WAL's
tail and a cursor are lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from auditship.agents.wal.record import RECORD_OVERHEAD
from shipper import endpoint as endpoints
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType
from shipper.spool_writer import SpoolWriter
from shipper.wire import Frame, frame_encoder
from tests.agentproc import QUICK_CONFIG, AgentDirs, RunningAgent, agent_running, file_events
from tests.producers import numbered_event
from tests.siem_server import TOKEN, FakeSiem, ServedSiem
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

MAX_BYTES = 4 * 1024 * 1024
FRAME_PAYLOAD = 400_000


def bounded_config(siem_url: str) -> str:
    """A small WAL, and a SIEM sink that holds it full while the SIEM is down (the file sink keeps up)."""
    return f"""
[wal]
fsync = "never"
max_bytes = {MAX_BYTES}
segment_bytes = {MAX_BYTES // 4}
[intake]
spool_scan_interval_s = 0.2
[supervisor]
stats_interval_s = 0.2
[sinks.file]
fsync = false
[sinks.parquet]
enabled = false
[sinks.siem]
enabled = true
endpoint = "{siem_url}"
format = "splunk_hec"
api_key = "{TOKEN}"
batch_size = 5
flush_interval_s = 0.05
timeout_s = 5.0
"""


@pytest.fixture
def served() -> Iterator[ServedSiem]:
    """A fake SIEM that the test starts when it wants it up."""
    served = ServedSiem(FakeSiem())
    yield served
    served.stop()


def large_frames(emitter: str, count: int, tx: bool) -> list[bytes]:
    return [
        frame_encoder.encode(
            Frame(
                emitter,
                n,
                n if tx else 0,
                AuditEvent(
                    event_type=AuditEventType.DATA_EXPORT, resource_id=str(n), message="x" * FRAME_PAYLOAD
                ),
            )
        )
        for n in range(1, count + 1)
    ]


class WalWatch:
    """Samples the WAL's size on disk and in the intake's counters, keeping the largest seen."""

    def __init__(self, agent: RunningAgent) -> None:
        self.agent = agent
        self.largest = 0

    def sample(self) -> dict[str, int | float]:
        counters = self.agent.counters("intake")
        self.largest = max(
            self.largest, _size_on_disk(self.agent.dirs.data / "wal"), int(counters.get("wal_bytes", 0))
        )
        return counters


def _size_on_disk(wal: Path) -> int:
    total = 0
    for path in wal.glob("*.wal"):
        try:
            total += path.stat().st_size
        except FileNotFoundError:
            pass  # collected between the listing and the stat
    return total


def siem_ids(served: ServedSiem) -> list[str]:
    return [envelope["event"]["event_id"] for envelope in served.siem.hec_events]


def test_a_flood_of_large_frames_stays_within_a_record_of_the_bound_and_the_intake_resumes_by_itself(
    served: ServedSiem,
) -> None:
    """With the SIEM down, 40 frames of 400 KB (four times wal.max_bytes) arrive at once: the intake
    pauses, the WAL never passes max_bytes by a record or more, and nothing is lost. Once the SIEM is
    back the WAL shrinks, the intake resumes on its own, every frame reaches the SIEM and the file, and
    an event sent afterwards does too."""
    frames = large_frames("flood", 40, tx=True)
    bound = MAX_BYTES + max(map(len, frames)) + RECORD_OVERHEAD
    with agent_running(bounded_config(served.url)) as agent:
        watch = WalWatch(agent)
        with zmq.Context() as context, context.socket(zmq.PUSH) as push:
            push.connect(agent.config.intake_endpoint)
            for frame in frames:
                push.send(frame)
            wait_for(lambda: watch.sample().get("paused") == 1, 30, "the intake to pause")
            for _ in range(10):
                watch.sample()
            assert watch.largest < bound, f"WAL at {watch.largest} bytes, bound {bound}"

            served.start()
            wait_for(lambda: len(served.siem.hec_events) >= 40, 120, "the flood in the SIEM")
            wait_for(lambda: watch.sample().get("paused") == 0, 30, "the intake to resume")
            push.send(frame_encoder.encode(Frame("flood", 41, 41, numbered_event("after", 41))))
            wait_for(lambda: len(served.siem.hec_events) >= 41, 60, "the event sent after the flood")
            # The file sink flushes on its own schedule: the SIEM may have it first.
            wait_for(lambda: len(file_events(agent.dirs.data)) >= 41, 60, "the event in the file")
        assert watch.largest < bound, f"WAL at {watch.largest} bytes, bound {bound}"
        assert sorted(str(e["resource_id"]) for e in file_events(agent.dirs.data)) == sorted(
            [str(n) for n in range(1, 42)]
        )
        assert len(set(siem_ids(served))) == 41


def test_a_spool_file_larger_than_the_bound_is_taken_as_the_wal_has_room(served: ServedSiem) -> None:
    """A spool file four times wal.max_bytes is taken only while the WAL is below its bound: the file
    stays until the WAL has room for the rest, which the SIEM's catching up makes, and then every event
    in it arrives once."""
    frames = large_frames("spooled", 40, tx=False)
    bound = MAX_BYTES + max(map(len, frames)) + RECORD_OVERHEAD
    with agent_running(bounded_config(served.url)) as agent:
        watch = WalWatch(agent)
        spool = endpoints.spool_dir(agent.config.intake_endpoint)
        SpoolWriter(spool, "spooled").write([(frame, False) for frame in frames])
        wait_for(lambda: watch.sample().get("paused") == 1, 30, "the intake to pause")
        for _ in range(10):
            watch.sample()
        assert watch.largest < bound, f"WAL at {watch.largest} bytes, bound {bound}"
        assert list(spool.glob("*.claimed")), "the file waits, claimed, for room in the WAL"

        served.start()
        wait_for(lambda: len(served.siem.hec_events) >= 40, 120, "the spooled events in the SIEM")
        wait_for(lambda: not list(spool.glob("*.claimed")), 30, "the spool file to go")
        assert watch.largest < bound, f"WAL at {watch.largest} bytes, bound {bound}"
        assert len(set(siem_ids(served))) == len(siem_ids(served)) == 40
        # The file sink goes at its own pace (a batch waits up to its flush interval): wait for it too.
        wait_for(lambda: len(file_events(agent.dirs.data)) >= 40, 30, "the spooled events in the file")
        assert len(file_events(agent.dirs.data)) == 40


NO_LAKE = QUICK_CONFIG + "[sinks.parquet]\nenabled = false\n"


def emit(name: str, count: int) -> list[str]:
    emitter = Emitter()
    events = [numbered_event(name, number) for number in range(count)]
    for event in events:
        emitter.emit(event)
    assert emitter.flush(30), emitter.stats
    emitter.close()
    return [event.event_id for event in events]


def test_after_the_wal_and_a_cursor_are_lost_new_events_get_new_seqs_and_reach_the_file(
    dirs: AgentDirs,
) -> None:
    """Issue 10, item 5: stop the agent, write 0 into the file sink's cursor and delete every segment,
    start again: the new events get seqs above every seq issued before, so the file sink writes them
    (before, they got seqs already used and the sink skipped them as written)."""
    agent = RunningAgent(dirs, NO_LAKE).start()
    try:
        before = emit("before", 50)
        wait_for(lambda: len(file_events(dirs.data)) >= 50, 60, "the first 50 events in the file")
    finally:
        agent.stop()
    wal = dirs.data / "wal"
    (wal / "cursors" / "file").write_text("0\n")
    for segment in wal.glob("*.wal"):
        segment.unlink()

    agent = RunningAgent(dirs, NO_LAKE).start()
    try:
        after = emit("after", 10)
        wait_for(lambda: len(file_events(dirs.data)) >= 60, 60, "the 10 new events in the file")
    finally:
        agent.stop()
    written = file_events(dirs.data)
    assert [e["event_id"] for e in written] == before + after
    old_seqs = [int(str(e["wal_seq"])) for e in written[:50]]
    new_seqs = [int(str(e["wal_seq"])) for e in written[50:]]
    assert min(new_seqs) > max(old_seqs)
