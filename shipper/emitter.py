"""emit(): hand an event to the local agent in a few microseconds, and never lose it while we live.

The path of one event:
1. It gets a per-emitter sequence number, is encoded, and waits in a batch (the outbox) for at most
   `linger_ms`, or until `batch_max` events wait. A batch goes out as one ZeroMQ message on a PUSH
   socket, without blocking: one wake-up of ZeroMQ's I/O thread per batch instead of one per
   event, which is most of what an event would otherwise cost a busy service. A background thread
   sends a batch whose time is up; a full one is sent by the emit() that fills it.
2. It stays in a bounded window until the intake confirms it is in the WAL. Confirmations arrive on
   a SUB socket that is read every `poll_every` emits, never waited on. Each names the stretch of
   transmissions `[first, last]` the intake received without a gap (see shipper.wire.Confirmation).
3. What is still unconfirmed and older than `first` was lost on the way (the agent died with it in a
   buffer, or a connection dropped), so it is sent again; the intake drops repeats by sequence number.
4. When the window or the socket's HWM is full, or no agent is connected, the event goes to a spool
   file instead; at interpreter exit whatever is still unconfirmed goes there too. The agent ingests
   spool files when it starts and while it runs.

One lock makes emit() safe from many threads (a ZeroMQ socket is not); after fork() the child starts
with its own identity, sockets, window and sending thread, and the parent's unconfirmed events stay
the parent's. The sockets are opened by the sending thread, so the first emit() of a process does not
wait for the connection.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
from pathlib import Path

import msgspec
import zmq

from shipper import endpoint as endpoints
from shipper import logger as hooks
from shipper.event import AuditEvent
from shipper.seal import SealUnavailableError
from shipper.spool import SpoolWriter
from shipper.wire import (
    Confirmation,
    Frame,
    confirmation_decoder,
    encode_batch,
    encoded_frame_decoder,
    frame_encoder,
)

log = logging.getLogger("auditship.emitter")
CONNECT_WAIT_MS = 100
SPILL_BATCH = 256
SENDER_RETRY_S = 1.0

# A frame as it waits to be sent, confirmed or spilled: its bytes, and whether its event has
# sensitive values (which the spool seals).
Pending = tuple[bytes, bool]


class EmitterStats(msgspec.Struct):
    """Counters since this emitter started (or since fork, in a child).

    sent: frames handed to the socket (first sends; resends are counted in `resent`);
    confirmed: events the agent confirmed as in its WAL; spilled: events written to the spool;
    dropped: events lost for good (spool unwritable, or a sensitive event with no key to seal it);
    failed: emit() calls that raised inside (an event that cannot be encoded), and failures of the
    sending thread (its batch waits and is sent or spilled later); pending: unconfirmed now, plus those
    waiting to be sent or spilled.
    """

    sent: int = 0
    confirmed: int = 0
    resent: int = 0
    spilled: int = 0
    dropped: int = 0
    failed: int = 0
    pending: int = 0


class Emitter:
    """Sends events to the agent at `endpoint`; see the module's docstring.

    window: unconfirmed events held at most (past it, events spill); send_hwm: ZeroMQ's send high
    water mark, in batches; poll_every: emits between reads of confirmations; batch_max and
    linger_ms: a batch is sent when it holds batch_max events or its first has waited linger_ms.
    Each time the sending thread wakes it takes the GIL from the service's own threads: at 5 ms, an
    asyncio server doing a few thousand requests a second paid about 20 µs a request for it, at 50 ms
    a third of that. A busy service fills its batches first and sends them from emit().
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        window: int = 10_000,
        send_hwm: int = 10_000,
        poll_every: int = 256,
        batch_max: int = 128,
        linger_ms: float = 50.0,
        spool_dir: Path | None = None,
    ) -> None:
        self.endpoint = endpoint or endpoints.intake_endpoint()
        self._confirm_endpoint = endpoints.confirm_endpoint(self.endpoint)
        self._spool_dir = spool_dir or endpoints.spool_dir(self.endpoint)
        self._window_size = window
        self._send_hwm = send_hwm
        self._poll_every = poll_every
        self._batch_max = batch_max
        self._linger_s = linger_ms / 1000
        self._start()
        os.register_at_fork(after_in_child=self._start)

    def _start(self) -> None:
        """(Re)initialise all per-process state; also the fork handler, so nothing is shared with a parent."""
        self.id = os.urandom(8).hex()
        self._topic = self.id.encode()
        self._lock = threading.Lock()
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._push: zmq.Socket[bytes] | None = None
        self._sub: zmq.Socket[bytes] | None = None
        # The next batch. Its frames carry the tx they get if it goes out; if it does not, they are
        # spooled, where tx means nothing (see the intake), and the next batch takes the same numbers.
        self._outbox: list[Pending] = []
        # What the agent has not confirmed yet, in tx order, a batch at a time: (tx of its first, frames).
        self._window: collections.deque[tuple[int, list[Pending]]] = collections.deque()
        self._held = 0  # frames in the window
        self._overflow: list[Pending] = []  # waiting to be spilled
        self._seq = 0
        self._tx = 0
        self._countdown = self._poll_every
        self._spool = SpoolWriter(self._spool_dir, self.id)
        self._stats = EmitterStats()
        self._warned: set[str] = set()
        self._wake = threading.Event()
        self._sender: threading.Thread | None = None

    @property
    def stats(self) -> EmitterStats:
        with self._lock:
            pending = self._held + len(self._outbox) + len(self._overflow)
            return msgspec.structs.replace(self._stats, pending=pending)

    def emit(self, event: AuditEvent) -> None:
        """Send one event; never blocks for long and never raises."""
        try:
            with self._lock:
                self._countdown -= 1
                # A full window is read every time: only confirmations can make room in it.
                if self._countdown <= 0 or self._held + len(self._outbox) >= self._window_size:
                    self._housekeep()  # may send the outbox (before a resend): read it after this
                outbox = self._outbox
                self._seq += 1
                if self._held + len(outbox) >= self._window_size:
                    frame = frame_encoder.encode(Frame(self.id, self._seq, 0, event))
                    self._overflow_add([(frame, bool(event.sensitive))])
                    return
                frame = frame_encoder.encode(Frame(self.id, self._seq, self._tx + len(outbox) + 1, event))
                outbox.append((frame, bool(event.sensitive)))
                if len(outbox) >= self._batch_max:
                    if self._push is not None:
                        self._send_outbox()
                elif len(outbox) == 1:
                    self._wake_sender()
        except Exception as exc:  # noqa: BLE001 - emit() must never raise into the service
            self._stats.failed += 1
            self._warn_once("failed", f"emit() failed and the event was not sent: {exc!r}")

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait up to `timeout` seconds for the agent to confirm everything sent; True when it has."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._outbox:
                if self._push is None:
                    self._install(self._open())
                self._send_outbox()
            self._spill_overflow()
            while self._window:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._sub is None:
                    return False
                if self._sub.poll(max(1, int(min(remaining, 0.05) * 1000))):
                    self._read_confirmations()
            return True

    def close(self, timeout: float = 2.0) -> None:
        """Flush, spool what is still unconfirmed, and close the sockets. emit() after close reconnects."""
        self.flush(timeout)
        with self._lock:
            self._spill([entry for _, batch in self._window for entry in batch])
            self._window.clear()
            self._held = 0
            for socket in (self._push, self._sub):
                if socket is not None:
                    socket.close(linger=0)
            self._push = self._sub = None
            if self._context is not None:
                self._context.term()
                self._context = None
            self._spool.close()

    def _housekeep(self) -> None:
        """Every `poll_every` emits, and at every emit while the window is full: spill what waits to be
        spilled, and read confirmations."""
        if self._countdown <= 0:
            self._spill_overflow()
        self._countdown = self._poll_every
        if self._sub is not None:
            self._read_confirmations()

    def _wake_sender(self) -> None:
        if self._sender is None:
            self._sender = threading.Thread(
                target=self._send_batches, args=(self._wake,), name="auditship-emitter", daemon=True
            )
            self._sender.start()
        self._wake.set()

    def _send_batches(self, wake: threading.Event) -> None:
        """The sending thread: opens the sockets, then sends each batch whose linger is up."""
        while True:
            wake.wait()
            try:
                if self._push is None:
                    self._connect()
                time.sleep(self._linger_s)
                with self._lock:
                    wake.clear()
                    if self._outbox and self._push is not None:
                        self._send_outbox()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive a bad batch; counted
                with self._lock:
                    self._stats.failed += 1
                self._warn_once("sender", f"sending a batch failed: {exc!r}")
                # Whatever failed (sockets that cannot be opened: no file descriptors left) is tried
                # again, not in a tight loop; the window still bounds what waits, then spills.
                time.sleep(SENDER_RETRY_S)

    def _send_outbox(self) -> None:
        outbox, self._outbox = self._outbox, []
        self._stats.sent += self._send(outbox)

    def _send(self, frames: list[Pending]) -> int:
        """Send frames numbered from the next tx on, `batch_max` to a message (a batch); returns how many
        went. From the first message the socket refuses (Again: HWM full or no agent connected; or a
        closed socket) on, the frames wait to be spilled: the numbers they carry are not sent."""
        assert self._push is not None
        size = self._batch_max
        for start in range(0, len(frames), size):
            batch = frames[start : start + size]
            try:
                self._push.send(encode_batch([frame for frame, _ in batch]), zmq.NOBLOCK)
            except zmq.ZMQError:
                self._overflow_add(frames[start:])
                return start
            # Only what reached the socket takes its tx: the intake reads a gap in tx as a loss.
            self._window.append((self._tx + 1, batch))
            self._tx += len(batch)
            self._held += len(batch)
        return len(frames)

    def _connect(self) -> None:
        """Open the sockets without holding the lock, so that emit() never waits for a connection."""
        sockets = self._open()
        with self._lock:
            if self._push is None:
                self._install(sockets)
                return
        for socket in sockets[1:]:  # flush() connected meanwhile
            socket.close(linger=0)
        sockets[0].term()

    def _open(self) -> tuple[zmq.Context[zmq.Socket[bytes]], zmq.Socket[bytes], zmq.Socket[bytes]]:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        push = context.socket(zmq.PUSH)
        push.setsockopt(zmq.SNDHWM, self._send_hwm)
        # IMMEDIATE: with no agent connected a send fails at once (and spills) instead of queueing
        # into a pipe that would be thrown away.
        push.setsockopt(zmq.IMMEDIATE, 1)
        push.setsockopt(zmq.LINGER, 0)
        push.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        push.connect(self.endpoint)
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, self._topic)
        sub.connect(self._confirm_endpoint)
        # Connecting is asynchronous; give a running agent a moment to accept, or the first events
        # of every process would spill. With no agent this costs CONNECT_WAIT_MS once.
        push.poll(CONNECT_WAIT_MS, zmq.POLLOUT)
        return context, push, sub

    def _install(
        self, sockets: tuple[zmq.Context[zmq.Socket[bytes]], zmq.Socket[bytes], zmq.Socket[bytes]]
    ) -> None:
        self._context, self._push, self._sub = sockets

    def _read_confirmations(self) -> None:
        assert self._sub is not None
        while True:
            try:
                message = self._sub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._apply(confirmation_decoder.decode(memoryview(message)[len(self._topic) :]))

    def _apply(self, confirmation: Confirmation) -> None:
        """Free what the confirmation covers; what was sent before its run began was lost: resend it."""
        window = self._window
        lost: list[Pending] = []
        while window:
            tx, batch = window[0]
            if tx < confirmation.first:
                cut = min(len(batch), confirmation.first - tx)
                lost += batch[:cut]
                batch, tx = batch[cut:], tx + cut
            if batch and tx <= confirmation.last:
                cut = min(len(batch), confirmation.last - tx + 1)
                self._stats.confirmed += cut
                batch, tx = batch[cut:], tx + cut
            if batch:
                self._held -= len(window[0][1]) - len(batch)
                window[0] = (tx, batch)
                break
            self._held -= len(window.popleft()[1])
        if lost:
            self._resend(lost)

    def _resend(self, entries: list[Pending]) -> None:
        """Send again, after the outbox (whose frames have the next numbers already), renumbered."""
        if self._outbox:
            self._send_outbox()
        renumbered = [
            (
                frame_encoder.encode(
                    msgspec.structs.replace(encoded_frame_decoder.decode(frame), tx=self._tx + index)
                ),
                sensitive,
            )
            for index, (frame, sensitive) in enumerate(entries, 1)
        ]
        self._stats.resent += self._send(renumbered)

    def _overflow_add(self, entries: list[Pending]) -> None:
        """Spill, in batches: one locked write per SPILL_BATCH events instead of one per event, when an
        overloaded agent makes every emit spill. The batch waits in memory at most `poll_every` emits
        (or until flush/close), as unconfirmed events in the window do."""
        self._overflow += entries
        if len(self._overflow) >= SPILL_BATCH:
            self._spill_overflow()

    def _spill_overflow(self) -> None:
        if self._overflow:
            overflow, self._overflow = self._overflow, []
            self._spill(overflow)

    def _spill(self, frames: list[Pending]) -> None:
        try:
            self._write_spool(frames)
        except SealUnavailableError as exc:
            # Only the sensitive ones cannot go; the rest still must.
            plain = [frame for frame in frames if not frame[1]]
            self._stats.dropped += len(frames) - len(plain)
            self._warn_once("seal", f"events with sensitive values were dropped, not spooled: {exc}")
            self._write_spool(plain)

    def _write_spool(self, frames: list[tuple[bytes, bool]]) -> None:
        if not frames:
            return
        try:
            self._spool.write(frames)
        except OSError as exc:
            self._stats.dropped += len(frames)
            self._warn_once("spool", f"spool {self._spool.path} unwritable, events dropped: {exc}")
            return
        self._stats.spilled += len(frames)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s (further occurrences are counted in Emitter.stats)", message)


_default: Emitter | None = None
_default_lock = threading.Lock()


def get_emitter() -> Emitter:
    """The process-wide emitter, created on first use with the default endpoint."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Emitter()
                atexit.register(_default.close)
    return _default


def emit(event: AuditEvent) -> None:
    """Send an event to the local audit agent. Never raises; see Emitter for the guarantees.

    Inside `shipper.testing.capture_events()` the event goes to the capture instead."""
    capture = hooks._capture
    if capture is not None:
        capture(event)
        return
    (_default or get_emitter()).emit(event)
