"""emit(): hand an event to the local agent in a few microseconds, and never lose it while we live.

The path of one event:
1. It gets a per-emitter sequence number, is encoded, and waits in a batch (the outbox) for at most
   `linger_ms`, or until `batch_max` events wait. A batch goes out as one ZeroMQ message on a PUSH
   socket, without blocking: one wake-up of ZeroMQ's I/O thread per batch instead of one per
   event, which is most of what an event would otherwise cost a busy service. A background thread
   sends a batch whose time is up; a full one is sent by the emit() that fills it.
2. It stays in a bounded window until the intake confirms it is in the WAL. Confirmations arrive on
   a socket that only this emitter's process hears (shipper.listener), read every `poll_every` emits
   and by the sending thread, never waited on. Each names the stretch of transmissions
   `[first, last]` the intake received without a gap (see shipper.wire.Confirmation).
3. What is still unconfirmed and older than `first` was lost on the way (the agent died with it in a
   buffer, or a connection dropped), so it is sent again; the intake drops repeats by sequence number.
4. Nothing waits in memory for long. A batch the socket refuses (no agent connected, or its HWM is
   full) is tried again at each linger tick and spilled to a spool file after `spill_after_s`; what
   the agent has not confirmed `confirm_timeout_s` after it was sent is spilled too (should it arrive
   after all, the intake drops the repeat). The agent ingests spool files when it starts and while
   it runs. An event that can be neither sent nor spilled (the spool is unwritable, or it has
   sensitive values and there is no agent key yet to seal them to) stays in memory, up to
   `hold_max` events, and goes when either becomes possible; only past that bound is one dropped,
   counted, and warned about once. At interpreter exit whatever is left goes to the spool.

An acknowledged emit (`emit(event, wait=...)`, `Emitter.submit`) marks its frame `sync` and sends it
at once; the intake fsyncs the WAL before confirming it, and the sending thread reads confirmations as
they come while receipts wait. Concurrent callers share the intake's fsyncs.

One lock makes emit() safe from many threads (a ZeroMQ socket is not); after fork() the child starts
with its own identity, sockets, window and sending thread, and the parent's unconfirmed events stay
the parent's. The sockets are opened by the sending thread, so the first emit() of a process does not
wait for the connection.
"""

from __future__ import annotations

import atexit
import collections
import logging
import operator
import os
import threading
import time
from pathlib import Path

import msgspec
import zmq
from zmq.utils import z85

from shipper import capture as hooks
from shipper import endpoint as endpoints
from shipper.curve import client_keys
from shipper.event import AuditEvent
from shipper.listener import ConfirmationListener
from shipper.receipt import Receipt
from shipper.spool_seal import Sealer, SealUnavailableError
from shipper.spool_writer import SpoolWriter
from shipper.wire import (
    BATCH_BYTES,
    Confirmation,
    encode_batch,
    encoded_frame_decoder,
    frame_encoder,
    header_decoder,
    sealed_frame,
)

log = logging.getLogger("auditship.emitter")
CONNECT_WAIT_MS = 100
SPILL_BATCH = 256
SENDER_RETRY_S = 1.0
# How often the sending thread looks at a window that only waits for confirmations: often enough to
# spill what an agent never confirmed within confirm_timeout_s, rarely enough to cost nothing.
WINDOW_CHECK_S = 0.5
# The overflow spool is on a tmpfs shared with the host: each emitter's file stays under this, and no
# spill leaves less than this fraction of that filesystem free.
OVERFLOW_FILE_BYTES = 16 * 1024 * 1024
OVERFLOW_KEEP_FREE = 0.1
# The frame buffer is kept between emits up to this size.
_BUFFER_KEPT = 64 * 1024

# A frame as it waits to be sent, confirmed or spilled: its bytes, and whether its event has
# sensitive values (which the spool seals).
Pending = tuple[bytes, bool]
# What the window holds per batch sent: tx of its first frame, its frames still unconfirmed, when sent.
Sent = tuple[int, list[Pending], float]
Sockets = tuple[zmq.Context[zmq.Socket[bytes]], zmq.Socket[bytes], ConfirmationListener]


_frame_of = operator.itemgetter(0)
"""A Pending's frame."""


def _batch_end(frames: list[Pending], start: int, size: int) -> int:
    """Where the batch that begins at `start` ends: at most `size` frames, and none more once they hold
    BATCH_BYTES (as _enqueue sends the outbox)."""
    end = min(start + size, len(frames))
    # Summed in C first: an outbox _enqueue sent is one batch, and a loop in Python costs it per frame.
    if sum(map(len, map(_frame_of, frames[start:end]))) < BATCH_BYTES:
        return end
    total = 0
    for index in range(start, end):
        total += len(frames[index][0])
        if total >= BATCH_BYTES:
            return index + 1
    return end


def _refused_in(refused: list[int], first: int, count: int) -> list[int]:
    """The transmissions of `refused` from `first` on, `count` of them (nearly always none)."""
    if not refused:
        return []
    return [tx for tx in refused if first <= tx < first + count]


class EmitterStats(msgspec.Struct):
    """Counters since this emitter started (or since fork, in a child).

    sent: frames handed to the socket (first sends; sends after a loss or a refused first try are
    counted in `resent`); confirmed: events the agent confirmed as in its WAL; refused: events the
    agent sent to its rejects/ instead (an event it could not take: its log and rejects/ say why);
    spilled: events written to the spool; dropped: events lost for good (more than `hold_max` could
    be neither sent nor spilled, or the process closed the emitter with some still in that state);
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
    refused: int = 0


class Emitter:
    """Sends events to the agent at `endpoint`; see the module's docstring.

    window: unconfirmed events held at most (past it, events spill); send_hwm: ZeroMQ's send high
    water mark, in batches; poll_every: emits between reads of confirmations; batch_max and
    linger_ms: a batch is sent when it holds batch_max events or its first has waited linger_ms.
    Each time the sending thread wakes it takes the GIL from the service's own threads: at 5 ms, an
    asyncio server doing a few thousand requests a second paid about 20 µs a request for it, at 50 ms
    a third of that. A busy service fills its batches first and sends them from emit().
    spill_after_s: how long a batch the socket refused is retried before it is spilled;
    confirm_timeout_s: how long a sent batch waits for its confirmation before it is spilled too;
    hold_max: events kept in memory, at most, while they can be neither sent nor spilled.
    curve_server_key, curve_client_cert: over tcp://, the agent's public certificate and this
    emitter's secret one (files; default AUDITSHIP_CURVE_SERVER_KEY, AUDITSHIP_CURVE_CLIENT_CERT);
    required beyond loopback (shipper.curve), else ValueError.
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
        spill_after_s: float = 1.0,
        confirm_timeout_s: float = 2.0,
        hold_max: int = 20_000,
        spool_dir: Path | None = None,
        curve_server_key: str | Path | None = None,
        curve_client_cert: str | Path | None = None,
    ) -> None:
        self.endpoint = endpoint or endpoints.intake_endpoint()
        # Checked here, so that a TCP endpoint beyond loopback without keys fails at construction and
        # never sends an event in clear (shipper.curve).
        self._curve = client_keys(self.endpoint, curve_server_key, curve_client_cert)
        # Over TCP sensitive values leave the process sealed to the agent (shipper.spool_seal): CURVE
        # protects the wire, this keeps them from the agent's own buffers until the intake encrypts them.
        self._sealer = None if self._curve is None else Sealer(z85.decode(self._curve.server_public))
        self._confirm_endpoint = endpoints.confirm_endpoint(self.endpoint)
        self._spool_dir = spool_dir or endpoints.spool_dir(self.endpoint)
        self._overflow_dir = endpoints.overflow_dir(self.endpoint)
        self._window_size = window
        self._send_hwm = send_hwm
        self._poll_every = poll_every
        self._batch_max = batch_max
        self._linger_s = linger_ms / 1000
        self._spill_after_s = spill_after_s
        self._confirm_timeout_s = confirm_timeout_s
        self._hold_max = hold_max
        self._start()
        os.register_at_fork(after_in_child=self._start)

    def _start(self) -> None:
        """(Re)initialise all per-process state; also the fork handler, so nothing is shared with a parent."""
        self.id = os.urandom(8).hex()
        self._lock = threading.Lock()
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._push: zmq.Socket[bytes] | None = None
        self._sub: ConfirmationListener | None = None
        # The sending thread's own listener, read without the lock while receipts wait; opened when
        # the first acknowledged emit is made, and kept.
        self._acks: ConfirmationListener | None = None
        # The next batch. Its frames carry the tx they get if it goes out; if it does not, they wait in
        # _unsent, where the tx they carry means nothing, and the next batch takes the same numbers.
        self._outbox: list[Pending] = []
        self._outbox_bytes = 0
        self._buffer = bytearray()  # where each frame is encoded (see _enqueue)
        # What the agent has not confirmed yet, in tx order, a batch at a time.
        self._window: collections.deque[Sent] = collections.deque()
        self._held = 0  # frames in the window
        # Refused by the socket, or not spillable: sent again, or spilled, at the next chance.
        self._unsent: list[Pending] = []
        self._unsent_since = 0.0
        self._spill_retry_at = 0.0
        self._receipts: dict[int, Receipt] = {}
        self._seq = 0
        self._tx = 0
        self._countdown = self._poll_every
        self._spool = SpoolWriter(
            self._spool_dir, self.id, create=self._spool_dir != endpoints.SYSTEM_SPOOL_DIR
        )
        # Never created here: it is the agent's, in its runtime directory.
        self._overflow = SpoolWriter(
            self._overflow_dir,
            self.id,
            create=False,
            max_bytes=OVERFLOW_FILE_BYTES,
            keep_free=OVERFLOW_KEEP_FREE,
        )
        self._stats = EmitterStats()
        self._dropped_seen = 0
        self._warned: set[str] = set()
        self._wake = threading.Event()
        self._sender: threading.Thread | None = None

    @property
    def linger_ms(self) -> float:
        return self._linger_s * 1000

    @linger_ms.setter
    def linger_ms(self, value: float) -> None:
        self._linger_s = value / 1000

    @property
    def spool_path(self) -> Path:
        """The file this emitter spills to (shipper.spool_writer), when the agent cannot take its events."""
        return self._spool.path

    @property
    def stats(self) -> EmitterStats:
        with self._lock:
            pending = self._held + len(self._outbox) + len(self._unsent)
            return msgspec.structs.replace(self._stats, pending=pending)

    def emit(self, event: AuditEvent, *, wait: float | None = None) -> None:
        """Send one event; never blocks for long and never raises.

        With `wait`, an acknowledged emit: returns once the agent has the event in its WAL, synced,
        and raises AuditDeliveryError after `wait` seconds without that (the event is not lost: it
        waits here or in the spool)."""
        if wait is not None:
            self.submit(event).wait(wait)
            return
        try:
            with self._lock:
                self._enqueue(event, sync=False)
        except Exception as exc:  # noqa: BLE001 - emit() must never raise into the service
            self._stats.failed += 1
            self._warn_once("failed", f"emit() failed and the event was not sent: {exc!r}")

    def submit(self, event: AuditEvent) -> Receipt:
        """An acknowledged emit: send `event` at once, asking the intake to sync it, and return the
        receipt to wait on (`receipt.wait(timeout)`, or `await receipt.wait_async(timeout)`)."""
        with self._lock:
            seq = self._enqueue(event, sync=True)
            receipt = Receipt(event.event_id, self._lock, lambda: self._forget(seq))
            self._receipts[seq] = receipt
            if self._outbox and self._push is not None:
                self._send_outbox()
            self._wake_sender()  # it reads the confirmations while receipts wait
        return receipt

    def _enqueue(self, event: AuditEvent, *, sync: bool) -> int:
        """Number, encode and queue one event (the lock held); its seq."""
        self._countdown -= 1
        outbox = self._outbox
        waiting = self._held + len(outbox)
        # A full window is read every time: only confirmations can make room in it.
        if self._countdown <= 0 or waiting >= self._window_size:
            self._housekeep()  # may send the outbox (before a resend): read it after this
            outbox = self._outbox
            waiting = self._held + len(outbox)
        self._seq = seq = self._seq + 1
        full = waiting >= self._window_size
        # The Frame's fields as a tuple, which encodes as the array_like Frame does without building
        # one, into a buffer kept for it (the lock is held) and copied out: encode() would grow a new
        # buffer for each frame, a third of what encoding one costs.
        buffer = self._buffer
        frame_encoder.encode_into(
            (self.id, seq, 0 if full else self._tx + len(outbox) + 1, event, sync), buffer
        )
        frame = bytes(buffer)
        if len(frame) > _BUFFER_KEPT:  # a huge event's buffer is not kept for ever
            self._buffer = bytearray()
        if full:
            self._unsent_add([(frame, bool(event.sensitive))])
            return seq
        outbox.append((frame, bool(event.sensitive)))
        queued = len(outbox)
        self._outbox_bytes += len(frame)
        if queued >= self._batch_max or self._outbox_bytes >= BATCH_BYTES:
            if self._push is not None:
                self._send_outbox()
        elif queued == 1:
            self._wake_sender()
        return seq

    def flush(self, timeout: float = 2.0) -> bool:
        """Send what waits and wait up to `timeout` seconds for the agent to confirm it; what the socket
        still refuses after `spill_after_s` (or at the timeout) is spilled, and so is what the agent
        has not confirmed `confirm_timeout_s` after it was sent. True when every event
        emitted so far is confirmed or in the spool and none was dropped since the last flush; False
        when one was, or one still waits in memory."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if (self._outbox or self._unsent) and self._push is None:
                self._install(self._open())
            if self._outbox:
                self._send_outbox()
            # Nothing listens (a clean stop removed the socket): no connection to wait for.
            absent = bool(self._unsent) and endpoints.agent_absent(self.endpoint)
            while self._window or self._unsent:
                assert self._push is not None and self._sub is not None
                self._retry_unsent()
                now = time.monotonic()
                waited = now - self._unsent_since >= self._spill_after_s
                if self._unsent and (absent or now >= deadline or waited):
                    self._spill_unsent()
                    if self._unsent:
                        break  # unspillable: they wait in memory, and flush says so
                remaining = deadline - now
                if remaining <= 0:
                    break
                wait_ms = max(1, int(min(remaining, 0.05) * 1000))
                # A refused batch waits for the agent to (re)connect; a sent one for its confirmation.
                if not self._window:
                    self._push.poll(wait_ms, zmq.POLLOUT)
                    continue
                self._sub.remind(now, self._window[0][2])
                if self._sub.poll(wait_ms):
                    self._read_confirmations()
                # The sending thread, which spills what waited too long, waits for this lock.
                self._spill_stale(time.monotonic())
            dropped, self._dropped_seen = self._stats.dropped - self._dropped_seen, self._stats.dropped
            return not self._window and not self._unsent and not dropped

    def close(self, timeout: float = 2.0) -> None:
        """Flush, spool what is still unconfirmed, and close the sockets. emit() after close reconnects."""
        self.flush(timeout)
        with self._lock:
            unspilled = self._spill([entry for _, batch, _ in self._window for entry in batch])
            self._window.clear()
            self._held = 0
            # Nothing will try these again: the process is closing its emitter.
            unspilled += self._unsent
            if unspilled:
                self._drop(
                    len(unspilled), "close", "closed with events that could be neither sent nor spooled"
                )
                self._unsent = []
            if self._push is not None:
                self._push.close(linger=0)
            if self._sub is not None:
                self._sub.close()
            self._push = self._sub = None
            if self._context is not None:
                self._context.term()
                self._context = None
            self._spool.close()

    def _housekeep(self) -> None:
        """Every `poll_every` emits, and at every emit while the window is full: spill what waits to be
        spilled, and read confirmations."""
        if self._countdown <= 0:
            self._spill_unsent()
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
        """The sending thread: opens the sockets, sends each batch whose linger is up, and keeps what
        waits moving: retries refused batches, spills stale ones, reads confirmations for receipts."""
        while True:
            wake.wait(self._next_tick())
            try:
                if self._push is None:
                    self._connect()
                if self._receipts:
                    self._read_acks(self._linger_s)
                else:
                    time.sleep(self._linger_s)
                with self._lock:
                    wake.clear()
                    self._tend(time.monotonic())
            except Exception as exc:  # noqa: BLE001 - the thread must outlive a bad batch; counted
                with self._lock:
                    self._stats.failed += 1
                self._warn_once("sender", f"sending a batch failed: {exc!r}")
                # Whatever failed (sockets that cannot be opened: no file descriptors left) is tried
                # again, not in a tight loop; the window still bounds what waits, then spills.
                time.sleep(SENDER_RETRY_S)

    def _next_tick(self) -> float | None:
        """How long the sending thread may sleep unless woken: for ever when nothing waits."""
        if self._receipts or self._unsent:
            return 0.0
        return WINDOW_CHECK_S if self._window else None

    def _tend(self, now: float) -> None:
        """One tick of the sending thread (the lock held)."""
        if self._push is not None:
            if self._outbox:
                self._send_outbox()
            self._retry_unsent()
        if self._sub is not None:
            self._read_confirmations()
        if self._window:
            # The sending thread's own listener too: this is its thread.
            for listener in (self._sub, self._acks):
                if listener is not None:
                    listener.remind(now, self._window[0][2])
        self._spill_stale(now)
        if self._unsent and now - self._unsent_since >= self._spill_after_s:
            self._spill_unsent()

    def _spill_stale(self, now: float) -> None:
        """Spill the batches sent confirm_timeout_s ago or more and still unconfirmed (the lock held)."""
        stale: list[Pending] = []
        while self._window and now - self._window[0][2] >= self._confirm_timeout_s:
            _, batch, _ = self._window.popleft()
            self._held -= len(batch)
            stale += batch
        if stale:
            # Received, maybe, but not taken into the WAL: an agent in trouble (or one that restarted
            # and never heard of them). Sending again would only feed it; the spool is where it will
            # look when it recovers.
            self._keep(self._spill(stale), now)

    def _send_outbox(self) -> None:
        outbox, self._outbox = self._outbox, []
        self._outbox_bytes = 0
        self._stats.sent += self._send(outbox)

    def _send(self, frames: list[Pending]) -> int:
        """Send frames numbered from the next tx on, up to `batch_max` and BATCH_BYTES to a message (a
        batch); returns how many went. From the first message the socket refuses (Again: HWM full or no
        agent connected; or a closed socket) on, the frames wait in _unsent: the numbers they carry are
        not sent."""
        assert self._push is not None
        now = time.monotonic()
        start = 0
        while start < len(frames):
            end = _batch_end(frames, start, self._batch_max)
            batch = frames[start:end]
            try:
                self._push.send(encode_batch(self._on_the_wire(batch)), zmq.NOBLOCK)
            except zmq.ZMQError:
                self._unsent_add(frames[start:], now)
                return start
            # Only what reached the socket takes its tx: the intake reads a gap in tx as a loss.
            self._window.append((self._tx + 1, batch, now))
            self._tx += len(batch)
            self._held += len(batch)
            start = end
        return len(frames)

    def _on_the_wire(self, batch: list[Pending]) -> list[bytes]:
        """The frames of `batch` as they are sent: over TCP, those with sensitive values sealed. The
        window keeps them as they were, so that a resend can renumber them."""
        sealer = self._sealer
        if sealer is None:
            return list(map(_frame_of, batch))
        return [sealed_frame(frame, sealer.seal) if sensitive else frame for frame, sensitive in batch]

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

    def _open(self) -> Sockets:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        push = context.socket(zmq.PUSH)
        push.setsockopt(zmq.SNDHWM, self._send_hwm)
        # IMMEDIATE: with no agent connected a send fails at once (and the batch waits to be sent
        # again or spilled) instead of queueing into a pipe that would be thrown away.
        push.setsockopt(zmq.IMMEDIATE, 1)
        push.setsockopt(zmq.LINGER, 0)
        # An agent that restarts is found again within a quarter of a second, before spill_after_s
        # sends what waits for it to the spool.
        push.setsockopt(zmq.RECONNECT_IVL_MAX, 250)
        if self._curve is not None:
            self._curve.apply(push)
        push.connect(self.endpoint)
        sub = self._listener(context)
        # Connecting is asynchronous; give a running agent a moment to accept, or the first events
        # of every process would spill. With no agent listening there is nothing to wait for.
        if not endpoints.agent_absent(self.endpoint):
            push.poll(CONNECT_WAIT_MS, zmq.POLLOUT)
        return context, push, sub

    def _listener(self, context: zmq.Context[zmq.Socket[bytes]]) -> ConfirmationListener:
        return ConfirmationListener(context, self._confirm_endpoint, self.id, self._curve)

    def _install(self, sockets: Sockets) -> None:
        self._context, self._push, self._sub = sockets

    def _read_confirmations(self) -> None:
        assert self._sub is not None
        for confirmation in self._sub.received():
            self._apply(confirmation)

    def _read_acks(self, duration: float) -> None:
        """In the sending thread, while receipts wait: take confirmations as they arrive, for up to
        `duration`, on a listener of its own (read without the lock, so emit() never waits for it).
        The same confirmations reach the shared listener too; applying one twice changes nothing."""
        if self._acks is None:
            # A context of its own: close() terminates the shared one, which must not wait on this.
            self._acks = self._listener(zmq.Context())
        deadline = time.monotonic() + duration
        while self._receipts:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._acks.poll(max(1, int(remaining * 1000))):
                return
            confirmations = self._acks.received()
            with self._lock:
                for confirmation in confirmations:
                    self._apply(confirmation)

    def _apply(self, confirmation: Confirmation) -> None:
        """Free what the confirmation covers; what was sent before its run began was lost: resend it."""
        window = self._window
        lost: list[Pending] = []
        while window:
            tx, batch, sent_at = window[0]
            if tx < confirmation.first:
                cut = min(len(batch), confirmation.first - tx)
                lost += batch[:cut]
                batch, tx = batch[cut:], tx + cut
            if batch and tx <= confirmation.last:
                cut = min(len(batch), confirmation.last - tx + 1)
                refused = _refused_in(confirmation.refused, tx, cut)
                self._stats.confirmed += cut - len(refused)
                self._stats.refused += len(refused)
                if self._receipts:
                    self._acknowledge(batch[:cut], [index - tx for index in refused])
                batch, tx = batch[cut:], tx + cut
            if batch:
                self._held -= len(window[0][1]) - len(batch)
                window[0] = (tx, batch, sent_at)
                break
            self._held -= len(window.popleft()[1])
        if lost:
            self._resend(lost)

    def _acknowledge(self, confirmed: list[Pending], refused: list[int]) -> None:
        """Settle the receipts of `confirmed`, those at the positions `refused` as refused."""
        for position, (frame, _) in enumerate(confirmed):
            receipt = self._receipts.pop(header_decoder.decode(frame).seq, None)
            if receipt is not None:
                if position in refused:
                    receipt.refuse()
                else:
                    receipt.set()

    def _forget(self, seq: int) -> None:
        with self._lock:
            self._receipts.pop(seq, None)

    def _release_receipts(self, frames: list[Pending]) -> None:
        """Stop tracking the receipts of frames spilled or dropped: no confirmation will name them now
        (their waiters time out, or already have), and a receipt nobody waits on must not linger."""
        for frame, _ in frames:
            self._receipts.pop(header_decoder.decode(frame).seq, None)

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

    def _retry_unsent(self) -> None:
        """Send what the socket refused before, once it takes messages again (an agent is connected)
        and the window has room; the rest keeps waiting to be spilled."""
        room = self._window_size - self._held - len(self._outbox)
        if room > 0 and self._unsent and self._push is not None and self._push.poll(0, zmq.POLLOUT):
            retry, self._unsent = self._unsent[:room], self._unsent[room:]
            self._resend(retry)

    def _unsent_add(self, entries: list[Pending], now: float | None = None) -> None:
        """Keep frames to send again or spill. Spilled in batches: one locked write per SPILL_BATCH
        events instead of one per event, when an overloaded agent makes every emit spill."""
        if not self._unsent:
            self._unsent_since = time.monotonic() if now is None else now
        self._unsent += entries
        if len(self._unsent) >= SPILL_BATCH:
            self._spill_unsent()

    def _spill_unsent(self) -> None:
        """Spill what waits in _unsent; what cannot be spilled stays, up to hold_max events. After a
        failed attempt the next waits spill_after_s, so an unwritable spool costs nothing per emit."""
        now = time.monotonic()
        if not self._unsent or now < self._spill_retry_at:
            return
        unsent, self._unsent = self._unsent, []
        self._keep(self._spill(unsent), now)

    def _keep(self, kept: list[Pending], now: float) -> None:
        """Hold what could not be spilled, up to hold_max events in all; drop (and count) the excess."""
        if not kept:
            return
        self._spill_retry_at = now + self._spill_after_s
        if not self._unsent:
            self._unsent_since = now
        self._unsent = kept + self._unsent
        excess = len(self._unsent) - self._hold_max
        if excess > 0:
            self._drop(excess, "hold", f"more than hold_max={self._hold_max} events waited in memory")
            if self._receipts:
                self._release_receipts(self._unsent[-excess:])
            del self._unsent[-excess:]

    def _spill(self, frames: list[Pending]) -> list[Pending]:
        """Write frames to the spool, or when it cannot take them (a full disk) to the overflow spool;
        returns those that could not be written (kept in memory)."""
        if not frames:
            return []
        for spool in (self._spool, self._overflow):
            try:
                spool.write(frames)
            except SealUnavailableError as exc:
                # Only the sensitive ones cannot go (never in plaintext); the rest still must.
                self._warn_once("seal", f"events with sensitive values wait in memory, not spooled: {exc}")
                plain = [frame for frame in frames if not frame[1]]
                return [frame for frame in frames if frame[1]] + self._spill(plain)
            except OSError as exc:
                self._warn_once(f"spool {spool.directory}", f"spool {spool.path} unwritable: {exc}")
                continue
            self._stats.spilled += len(frames)
            if self._receipts:
                self._release_receipts(frames)
            return []
        self._warn_once("memory", "no spool can take events: they wait in memory (up to hold_max)")
        return frames

    def _drop(self, count: int, key: str, why: str) -> None:
        self._stats.dropped += count
        self._warn_once(f"drop-{key}", f"{count} audit events dropped: {why}")

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


def emit(event: AuditEvent, *, wait: float | None = None) -> None:
    """Send an event to the local audit agent. Never raises, unless `wait` asks for an acknowledged
    emit (see Emitter.emit). Inside `shipper.testing.capture_events()` the event goes to the capture
    instead."""
    capture = hooks.active
    if capture is not None:
        capture(event)
        return
    (_default or get_emitter()).emit(event, wait=wait)


def submit(event: AuditEvent) -> Receipt:
    """An acknowledged emit through the process-wide emitter (see Emitter.submit); a captured event is
    acknowledged at once."""
    capture = hooks.active
    if capture is not None:
        capture(event)
        return Receipt(event.event_id)
    return (_default or get_emitter()).submit(event)
