"""The emitter against a stand-in intake made of real ZeroMQ sockets, so every step can be watched."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from auditship.agents.config import AgentConfig
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType
from shipper.records import scan_records
from shipper.spool_writer import PLAIN, SEALED
from shipper.wire import (
    BATCH_BYTES,
    Confirmation,
    Frame,
    frame_decoder,
    frame_encoder,
    hello_decoder,
    message_frames,
)
from tests.waiting import wait_for


class StandInIntake:
    """A PULL socket and a confirmation ROUTER bound where the agent's would be."""

    def __init__(self, runtime: Path) -> None:
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.endpoint = f"ipc://{runtime / 'intake.sock'}"
        self.pull = self.context.socket(zmq.PULL)
        self.pull.bind(self.endpoint)
        self.router = self.context.socket(zmq.ROUTER)
        self.router.bind(f"ipc://{runtime / 'confirm.sock'}")
        self.routes: dict[str, set[bytes]] = {}

    def receive(self, count: int, timeout_ms: int = 5000) -> list[Frame]:
        frames: list[Frame] = []
        while len(frames) < count:
            assert self.pull.poll(timeout_ms), f"only {len(frames)} of {count} frames arrived"
            frames.extend(frame_decoder.decode(frame) for frame in message_frames(self.pull.recv()))
        assert len(frames) == count, f"{len(frames)} frames arrived, {count} expected"
        return frames

    def hellos(self) -> list[str]:
        """The emitter ids of the hellos waiting, each recorded as a route for its id."""
        heard = []
        while self.router.poll(0):
            route, body = self.router.recv_multipart()
            emitter = hello_decoder.decode(body).emitter
            self.routes.setdefault(emitter, set()).add(route)
            heard.append(emitter)
        return heard

    def confirm(self, emitter: str, first: int, last: int) -> None:
        self.hellos()
        for route in self.routes.get(emitter, ()):
            self.router.send_multipart([route, frame_encoder.encode(Confirmation(first, last))])

    def close(self) -> None:
        self.context.destroy(linger=0)


@pytest.fixture
def runtime() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="as-em-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def event(number: int, **fields: object) -> AuditEvent:
    return AuditEvent(event_type=AuditEventType.API_REQUEST, details={"n": number}, **fields)  # type: ignore[arg-type]


def spooled(path: Path) -> list[bytes]:
    return [payload for _, payload in scan_records(path.read_bytes())]


def confirmed_after(emitter: Emitter, intake: StandInIntake, first: int, last: int, expected: int) -> None:
    """Send a confirmation until the emitter has read it (its hello comes as it connects), then check
    the count."""

    def read() -> bool:
        intake.confirm(emitter.id, first, last)
        emitter.flush(0.05)
        return emitter.stats.confirmed >= expected

    wait_for(read, 10, f"the emitter to count {expected} confirmed")


def test_with_no_agent_every_event_is_spilled_to_the_spool_and_nothing_is_sent(runtime: Path) -> None:
    """IMMEDIATE makes a send without a connected agent fail at once; the event goes to the spool."""
    emitter = Emitter(f"ipc://{runtime / 'intake.sock'}")
    for number in range(10):
        emitter.emit(event(number))
    assert emitter.stats.pending == 10  # spilled in batches: flush writes what waits
    emitter.flush(0)
    assert emitter.stats.spilled == 10
    assert emitter.stats.sent == 0
    records = spooled(emitter.spool_path)
    assert [r[:1] for r in records] == [PLAIN] * 10
    assert [frame_decoder.decode(r[1:]).seq for r in records] == list(range(1, 11))
    emitter.close(0)


def test_confirmed_events_leave_the_window(runtime: Path) -> None:
    """A confirmation of transmissions [1, 6] frees those six events, and only those."""
    intake = StandInIntake(runtime)
    emitter = Emitter(intake.endpoint, poll_every=1)
    try:
        for number in range(10):
            emitter.emit(event(number))
        frames = intake.receive(10)
        assert [(f.seq, f.tx) for f in frames] == [(n, n) for n in range(1, 11)]
        confirmed_after(emitter, intake, 1, 6, 6)
        assert emitter.stats.pending == 4
        confirmed_after(emitter, intake, 1, 10, 10)
        assert emitter.stats.pending == 0
        assert emitter.stats.resent == 0
    finally:
        emitter.close(0)
        intake.close()


def test_the_emitter_says_hello_with_its_id_and_again_when_confirmations_stop(runtime: Path) -> None:
    """Its listener says hello as it connects. The agent restarts (a new ROUTER, which knows no route)
    while events wait for confirmation: the emitter says hello again within HELLO_AGAIN_S of waiting in
    silence, so the new agent's confirmation reaches it and frees them."""
    intake = StandInIntake(runtime)
    emitter = Emitter(intake.endpoint)
    try:
        emitter.emit(event(0))
        intake.receive(1)
        wait_for(lambda: emitter.id in intake.hellos(), 10, "the emitter's hello")
        confirmed_after(emitter, intake, 1, 1, 1)
        intake.router.close(linger=0)
        intake.router = intake.context.socket(zmq.ROUTER)
        intake.router.bind(f"ipc://{runtime / 'confirm.sock'}")
        intake.routes.clear()
        emitter.emit(event(1))
        intake.receive(1)
        wait_for(lambda: emitter.id in intake.hellos(), 10, "a hello to the restarted agent")
        confirmed_after(emitter, intake, 1, 2, 2)
        assert emitter.stats.pending == 0
    finally:
        emitter.close(0)
        intake.close()


def test_flush_spills_what_the_agent_never_confirms_instead_of_waiting_for_it(runtime: Path) -> None:
    """An agent that takes the frames and never confirms them (one that restarted and never heard of
    them): flush() spills them confirm_timeout_s after they were sent and says all is safe, rather than
    waiting out its timeout with them in memory."""
    intake = StandInIntake(runtime)
    emitter = Emitter(intake.endpoint, confirm_timeout_s=0.3)
    try:
        for number in range(5):
            emitter.emit(event(number))
        assert emitter.flush(20)
        intake.receive(5)
        assert (emitter.stats.spilled, emitter.stats.pending) == (5, 0)
        assert [frame_decoder.decode(r[1:]).seq for r in spooled(emitter.spool_path)] == [1, 2, 3, 4, 5]
    finally:
        emitter.close(0)
        intake.close()


def test_a_message_that_is_no_confirmation_is_skipped(runtime: Path) -> None:
    """Bytes on the confirmation socket that do not decode as a confirmation change nothing and do not
    stop the emitter from reading the next one."""
    intake = StandInIntake(runtime)
    emitter = Emitter(intake.endpoint, poll_every=1)
    try:
        emitter.emit(event(0))
        intake.receive(1)
        wait_for(lambda: emitter.id in intake.hellos(), 10, "the emitter's hello")
        for route in intake.routes[emitter.id]:
            intake.router.send_multipart([route, b"\xc1 not msgpack"])
        confirmed_after(emitter, intake, 1, 1, 1)
        assert (emitter.stats.confirmed, emitter.stats.failed) == (1, 0)
    finally:
        emitter.close(0)
        intake.close()


def test_what_was_sent_before_the_confirmed_run_is_sent_again(runtime: Path) -> None:
    """The agent restarted and received from transmission 3 on: events 1 and 2 are resent, same seqs."""
    intake = StandInIntake(runtime)
    emitter = Emitter(intake.endpoint, poll_every=1)
    try:
        for number in range(5):
            emitter.emit(event(number))
        intake.receive(5)
        confirmed_after(emitter, intake, 3, 5, 3)
        resent = intake.receive(2)
        assert [(f.seq, f.tx) for f in resent] == [(1, 6), (2, 7)]
        assert emitter.stats.resent == 2
        assert emitter.stats.pending == 2
        confirmed_after(emitter, intake, 3, 7, 5)
        assert emitter.stats.pending == 0
    finally:
        emitter.close(0)
        intake.close()


def test_events_go_out_in_batches_and_a_resend_follows_what_waits_in_the_outbox(runtime: Path) -> None:
    """Events go in batches of four, also those that waited for the connection (flush sends a partial
    one). A confirmation from tx 6 on means 1-5 were lost: they go out again after the two events
    waiting in the outbox, and are numbered after them."""
    intake = StandInIntake(runtime)
    emitter = Emitter(intake.endpoint, batch_max=4, linger_ms=60_000)
    try:
        for number in range(10):
            emitter.emit(event(number))
        emitter.flush(0)
        sizes = []
        while sum(sizes) < 10:
            assert intake.pull.poll(5000), f"messages of {sizes} frames arrived, 10 frames expected"
            sizes.append(len(message_frames(intake.pull.recv())))
        assert sizes == [4, 4, 2]
        for number in range(10, 12):
            emitter.emit(event(number))  # waiting in the outbox: the linger is a minute
        confirmed_after(emitter, intake, 6, 10, 5)
        frames = intake.receive(7)
        assert [(f.seq, f.tx) for f in frames] == [(11, 11), (12, 12), *((n, n + 12) for n in range(1, 6))]
        assert emitter.stats.resent == 5
    finally:
        emitter.close(0)
        intake.close()


def test_a_batch_is_sent_once_it_holds_batch_bytes_so_no_message_passes_the_intakes_cap(
    runtime: Path,
) -> None:
    """Events of 700 KB (under max_frame_bytes, 1 MiB) go at most six to a message, not 128: each
    message holds at most BATCH_BYTES plus one frame, under the intake's 8 MiB max_message_bytes."""
    intake = StandInIntake(runtime)
    emitter = Emitter(intake.endpoint, linger_ms=60_000)
    try:
        for number in range(20):
            emitter.emit(event(number, message="x" * 700_000))
        emitter.flush(0)
        sizes: list[int] = []
        counts: list[int] = []
        while sum(counts) < 20:
            assert intake.pull.poll(5000), f"messages of {counts} frames arrived, 20 frames expected"
            message = intake.pull.recv()
            sizes.append(len(message))
            counts.append(len(message_frames(message)))
        assert sum(counts) == 20 and max(counts) <= 6  # when they go depends on the connection
        assert max(sizes) <= BATCH_BYTES + 1024 * 1024 < AgentConfig().intake.max_message_bytes
    finally:
        emitter.close(0)
        intake.close()


def test_an_event_emitted_as_a_confirmation_makes_a_resend_is_not_lost(runtime: Path) -> None:
    """The emit() that reads a confirmation of a loss sends its outbox and the resend first; the event
    it carries goes into the next batch, numbered after them: every seq arrives, tx has no gap."""
    intake = StandInIntake(runtime)
    emitter = Emitter(intake.endpoint, batch_max=4, linger_ms=60_000, poll_every=1)
    try:
        for number in range(4):
            emitter.emit(event(number))
        emitter.flush(0)
        intake.receive(4)
        number = 4
        # Say it until an emit reads it.
        while emitter.stats.resent == 0 and number < 200:
            intake.confirm(emitter.id, 3, 4)  # 1 and 2 were lost
            emitter.emit(event(number))
            number += 1
            time.sleep(0.01)
        assert emitter.stats.resent == 2
        emitter.flush(0)
        frames = intake.receive(number - 4 + 2)
        assert sorted(f.seq for f in frames) == sorted([1, 2, *range(5, number + 1)])
        assert sorted(f.tx for f in frames) == list(range(5, 5 + len(frames)))
    finally:
        emitter.close(0)
        intake.close()


def test_a_full_window_spills_instead_of_growing(runtime: Path) -> None:
    """With nothing confirmed, events past the window size go to the spool."""
    intake = StandInIntake(runtime)
    emitter = Emitter(intake.endpoint, window=100)
    try:
        for number in range(150):
            emitter.emit(event(number))
        emitter.flush(0)
        intake.receive(100)
        assert emitter.stats.sent == 100
        assert emitter.stats.spilled == 50
    finally:
        emitter.close(0)
        intake.close()


def test_close_spools_what_was_never_confirmed(runtime: Path) -> None:
    """At exit, unconfirmed events are written to the spool, where the agent will find them."""
    intake = StandInIntake(runtime)
    emitter = Emitter(intake.endpoint)
    for number in range(20):
        emitter.emit(event(number))
    intake.receive(20)
    emitter.close(0.1)
    records = spooled(emitter.spool_path)
    assert sorted(frame_decoder.decode(r[1:]).seq for r in records) == list(range(1, 21))
    intake.close()


def test_emit_never_raises_and_counts_an_event_it_cannot_encode(runtime: Path) -> None:
    """An unencodable detail does not reach the service as an exception; it is counted as failed."""
    emitter = Emitter(f"ipc://{runtime / 'intake.sock'}")
    emitter.emit(event(0, changes={"bad": object()}))
    assert emitter.stats.failed == 1
    emitter.close(0)


def test_a_sensitive_event_waits_in_memory_until_it_can_be_sealed_and_is_never_in_plaintext(
    runtime: Path,
) -> None:
    """Without the agent's key it is kept (flush says so); once the key is there, it is sealed."""
    from auditship.agents.crypto.keyring import Keyring
    from auditship.agents.crypto.spool_unseal import unseal

    emitter = Emitter(f"ipc://{runtime / 'intake.sock'}", spill_after_s=0)
    emitter.emit(event(0, sensitive={"ssn": "123-45-6789"}))
    assert emitter.flush(0) is False
    assert (emitter.stats.dropped, emitter.stats.pending) == (0, 1)
    keyring = Keyring.load_or_create(runtime / "keys")
    (runtime / "spool").mkdir(exist_ok=True)
    (runtime / "spool" / "seal.pub").write_bytes(keyring.spool_public_key())
    emitter.emit(event(1, sensitive={"ssn": "123-45-6789"}))
    assert emitter.flush(0) is True
    assert (emitter.stats.spilled, emitter.stats.pending) == (2, 0)
    emitter.close(0)
    data = (emitter.spool_path).read_bytes()
    assert b"123-45-6789" not in data
    records = spooled(emitter.spool_path)
    assert [record[:1] for record in records] == [SEALED, SEALED]
    assert {frame_decoder.decode(unseal(r[1:], keyring)).seq for r in records} == {1, 2}


def test_past_hold_max_events_that_can_go_nowhere_are_dropped_counted_and_flush_says_so(
    runtime: Path,
) -> None:
    """An unwritable spool and no agent: hold_max events wait in memory, the rest are dropped."""
    (runtime / "spool").write_text("a file where the spool directory should be")
    emitter = Emitter(f"ipc://{runtime / 'intake.sock'}", spill_after_s=0, hold_max=5)
    for number in range(8):
        emitter.emit(event(number))
    assert emitter.flush(0) is False
    assert (emitter.stats.dropped, emitter.stats.pending, emitter.stats.spilled) == (3, 5, 0)
    (runtime / "spool").unlink()
    assert emitter.flush(0) is True
    assert (emitter.stats.spilled, emitter.stats.pending) == (5, 0)
    emitter.close(0)


def test_an_event_nobody_takes_reaches_the_spool_on_its_own_within_seconds(runtime: Path) -> None:
    """No agent, one event, and no further emit, flush or exit: the sending thread spills it anyway,
    so a quiet service killed a moment later has lost nothing."""
    emitter = Emitter(f"ipc://{runtime / 'intake.sock'}", linger_ms=10, spill_after_s=0.2)
    emitter.emit(event(0))
    path = emitter.spool_path
    wait_for(lambda: path.exists() and len(spooled(path)) == 1, 10, "the event in the spool")
    assert emitter.stats.spilled == 1
    emitter.close(0)


def test_what_the_agent_never_confirms_is_spilled_on_its_own(runtime: Path) -> None:
    """Received but never confirmed (an agent that died with it in a buffer): spilled after
    confirm_timeout_s, without waiting for the process to exit."""
    intake = StandInIntake(runtime)
    emitter = Emitter(intake.endpoint, linger_ms=10, confirm_timeout_s=0.3)
    try:
        for number in range(3):
            emitter.emit(event(number))
        intake.receive(3)
        path = emitter.spool_path
        wait_for(lambda: path.exists() and len(spooled(path)) == 3, 10, "the unconfirmed events spilled")
        assert (emitter.stats.spilled, emitter.stats.pending) == (3, 0)
    finally:
        emitter.close(0)
        intake.close()


def test_a_forked_child_gets_its_own_identity_and_an_empty_window(runtime: Path) -> None:
    """After fork() the child's emitter shares nothing with the parent's."""
    intake = StandInIntake(runtime)
    emitter = Emitter(intake.endpoint)
    try:
        emitter.emit(event(0))
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            report = f"{emitter.id} {emitter.stats.pending}".encode()
            emitter.emit(event(1))
            emitter.flush(0.3)  # nobody confirms here: this only lets the I/O thread send before _exit
            report += f" {emitter.stats.sent}".encode()
            os.write(write, report)
            os._exit(0)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        child_id, child_pending, child_sent = os.read(read, 100).decode().split()
        os.close(read)
        assert status == 0
        assert child_id != emitter.id
        assert (child_pending, child_sent) == ("0", "1")
        frames = intake.receive(2)
        assert {f.emitter for f in frames} == {emitter.id, child_id}
    finally:
        emitter.close(0)
        intake.close()


def test_an_emitter_tells_a_missing_or_dead_agent_from_a_listening_one(runtime: Path) -> None:
    """No socket file, or one nobody accepts on (left by a kill -9): absent. A bound socket: present."""
    import socket

    from shipper.endpoint import agent_absent

    path = runtime / "intake.sock"
    assert agent_absent(f"ipc://{path}")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    assert path.exists() and agent_absent(f"ipc://{path}")
    path.unlink()
    intake = StandInIntake(runtime)
    try:
        assert not agent_absent(intake.endpoint)
    finally:
        intake.close()
    assert not agent_absent("tcp://127.0.0.1:1"), "over tcp it cannot tell, so it never claims absence"


def test_after_an_agent_restart_an_event_reaches_the_new_agent_on_its_own(runtime: Path) -> None:
    """The agent goes away and comes back: an event emitted meanwhile is sent to the new one by the
    sending thread (no further emit, flush or exit needed), not parked in memory."""
    intake = StandInIntake(runtime)
    emitter = Emitter(intake.endpoint, linger_ms=10, spill_after_s=5)
    try:
        emitter.emit(event(0))
        intake.receive(1)
        intake.close()
        for name in ("intake.sock", "confirm.sock"):
            (runtime / name).unlink()
        emitter.emit(event(1))
        intake = StandInIntake(runtime)
        (frame,) = intake.receive(1, timeout_ms=5000)
        assert frame.seq == 2
        assert emitter.stats.spilled == 0
    finally:
        emitter.close(0)
        intake.close()
