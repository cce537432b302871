"""Acknowledged emits share the intake's WAL syncs (group commit), and none is confirmed before its sync.

The intake runs in a thread of the test's process (its supervisor a ROUTER socket of the test), so that
the test can start it after frames are queued, and see its counters as it confirms.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from auditship.agents import messages
from auditship.agents.config import AgentConfig, parse_config
from auditship.agents.intake.intake import Intake, Run
from auditship.agents.mailbox import Mailbox
from auditship.agents.messages import Stop
from auditship.ondisk.data_layout import DataLayout
from shipper import endpoint
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType
from tests.waiting import wait_for

CALLERS = 64


class IntakeInThread:
    """An Intake with its sockets bound (by its constructor); `start()` runs its loop in a thread."""

    def __init__(self, root: Path, fsync: str) -> None:
        self.config: AgentConfig = parse_config(
            f'data_dir = "{root / "data"}"\nruntime_dir = "{root / "run"}"\n'
            f'spool_dir = "{root / "spool"}"\n[wal]\nfsync = "{fsync}"\n'
        )
        DataLayout(self.config.data_path).prepare()
        self.config.runtime_path.mkdir()
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        control = endpoint.control_endpoint(self.config.runtime_path)
        self.router.bind(control)
        self.mailbox = Mailbox(self.context, control, "intake", os.getppid())
        self.intake = Intake(self.config, self.context, self.mailbox)
        self.thread = threading.Thread(target=self.intake.run, name="intake")

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        if self.thread.is_alive():
            self.router.send_multipart([b"intake", messages.encoder.encode(Stop())])
            self.thread.join(30)
        self.mailbox.close()
        self.router.close()
        self.context.term()


@pytest.fixture
def root() -> Iterator[Path]:
    """Short, for the ipc paths."""
    path = Path(tempfile.mkdtemp(prefix="gc-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def emitters() -> Iterator[list[Emitter]]:
    made: list[Emitter] = []
    yield made
    for emitter in made:
        emitter.close(0)


def _event(number: int) -> AuditEvent:
    return AuditEvent(event_type=AuditEventType.DATA_EXPORT, details={"n": number})


def test_64_concurrent_acknowledged_emits_share_a_few_wal_syncs(root: Path, emitters: list[Emitter]) -> None:
    """64 threads each wait on an acknowledged emit, sent while the intake is not yet reading: it takes
    them together, syncs the WAL for all of them, and every caller returns. One sync each would be 64."""
    served = IntakeInThread(root, fsync="always")
    emitter = Emitter(served.config.intake_endpoint)
    emitters.append(emitter)
    errors: list[BaseException] = []

    def caller(number: int) -> None:
        try:
            emitter.emit(_event(number), wait=30)
        except BaseException as exc:
            errors.append(exc)

    callers = [threading.Thread(target=caller, args=(n,)) for n in range(CALLERS)]
    try:
        for thread in callers:
            thread.start()
        wait_for(lambda: emitter.stats.sent >= CALLERS, 10, "every caller's frame sent")
        served.start()
        for thread in callers:
            thread.join(60)
        assert errors == []
        assert served.intake.counters.appended == CALLERS
        assert 1 <= served.intake.counters.ack_syncs <= CALLERS // 8, served.intake.counters
    finally:
        served.close()


def test_a_sync_frame_under_fsync_never_is_synced_before_its_confirmation_goes_out(
    root: Path, emitters: list[Emitter]
) -> None:
    """wal.fsync = "never" syncs nothing on its own; an acknowledged emit still gets a sync, counted
    before its confirmation is sent, and its caller returns."""
    served = IntakeInThread(root, fsync="never")
    syncs_at_confirmation: list[int] = []
    send = served.intake._send_confirmation

    def observed(run: Run, routes: list[bytes]) -> None:
        syncs_at_confirmation.append(served.intake.counters.ack_syncs)
        send(run, routes)

    served.intake._send_confirmation = observed  # type: ignore[method-assign]
    served.start()
    emitter = Emitter(served.config.intake_endpoint)
    emitters.append(emitter)
    try:
        emitter.emit(_event(0), wait=30)
        assert syncs_at_confirmation[0] == 1
        emitter.emit(_event(1))  # not acknowledged: confirmed at the next tick, with no sync of its own
        assert emitter.flush(10)
        assert served.intake.counters.ack_syncs == 1
    finally:
        served.close()
