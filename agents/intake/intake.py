"""The intake: takes frames off the PULL socket and spool files, validates them, appends them to the WAL
and confirms to each emitter what the WAL holds.

A frame is validated by a typed decode. A bad one goes to rejects/ with the reason; a repeat (an
emitter's resend, or a spool record already received) is dropped; sensitive values are encrypted
before the WAL sees them. Each accepted event is stamped with its sender as the kernel tells it
(senders.py; over TCP, the CURVE client key it connected with: curve_auth.py), which also keys the
dedupe index and the per-sender rate limit (limits.py), and is checked against `[intake.identities]`.
A frame marked `sync` (an acknowledged emit) has the WAL fsynced before its confirmation goes out,
which is then at once. A failed WAL write is retried, holding the batch, until it succeeds or a Stop
comes; the socket is not read meanwhile, and nothing of the batch is confirmed or counted as seen, so
emitters keep it, and spill it, instead of losing anything.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterable
from pathlib import Path

import msgspec
import zmq

from auditship.agents.config import AgentConfig
from auditship.agents.crypto.blinding import load_blinding
from auditship.agents.crypto.fields import encrypt_sensitive
from auditship.agents.crypto.keyring import Keyring
from auditship.agents.crypto.rotation import Rotation
from auditship.agents.curve_keys import CurveKeys
from auditship.agents.errors import ConfigError, FrameRejected, UnreadableSpoolEntry
from auditship.agents.intake import spool_pickup
from auditship.agents.intake.checks import refusal
from auditship.agents.intake.counters import IntakeCounters
from auditship.agents.intake.curve_auth import CurveGate
from auditship.agents.intake.dedupe import LEGACY, DedupeIndex, Key
from auditship.agents.intake.failure import WriteFailure
from auditship.agents.intake.limits import RateLimits
from auditship.agents.intake.rejects import WARN_INTERVAL_S, RejectLog, WarningLimit
from auditship.agents.intake.required_fields import FLAG_KEY, RequiredFields
from auditship.agents.intake.routes import Routes
from auditship.agents.intake.senders import Identities, Principal, Senders, describe, principal
from auditship.agents.mailbox import Mailbox
from auditship.agents.messages import Stop
from auditship.agents.subjects.keyring import SubjectKeyring
from auditship.agents.wal import WriteAheadLog
from auditship.agents.wal.growth import GrowthAnnouncer
from auditship.agents.wal.record import RECORD_OVERHEAD
from auditship.ondisk.data_layout import DataLayout
from auditship.ondisk.errors import DecryptionError
from shipper import endpoint as endpoints
from shipper.event import Sender
from shipper.wire import (
    Confirmation,
    Frame,
    checked_frame_decoder,
    frame_decoder,
    frame_encoder,
    header_decoder,
    hello_decoder,
    message_frames,
    opened_frame,
)

log = logging.getLogger("auditship.intake")
MAINTENANCE_INTERVAL_S = 1.0
RETRY_PAUSE_S = 0.5
RUN_IDLE_S = 60.0
QUARANTINE_WARN_INTERVAL_S = 60.0
FORGET_INTERVAL_S = 60.0
"""How often idle emitters are looked for in the dedupe index (its horizon is days)."""
# Refused transmissions told to one emitter per confirmation at most: an emitter whose every frame is
# refused still gets its confirmations, and past this it counts a few refused events as confirmed.
MAX_REFUSED = 4096

MAX_HELLO_BYTES = 1024
MAX_HELLOS_PER_READ = 1000
"""Hellos taken per wake-up at most, so that a flood of them cannot starve the frames."""

Incoming = tuple[bytes, Sender | None]
"""A frame as it came, and its sender (None: no identity, as over plain TCP)."""


class _EventSender(msgspec.Struct):
    sender: Sender | None = None


class _StoredFrame(msgspec.Struct, array_like=True):
    """What replaying the WAL into the dedupe index reads of a record: its key and seq."""

    emitter: str
    seq: int
    tx: int
    event: _EventSender


_stored_decoder = msgspec.msgpack.Decoder(_StoredFrame)


MAX_EMITTER_IDS = 4096
"""Emitter ids whose pattern was matched, kept at most; the set is emptied when full."""


def _dedupe_key(payload: bytes, anonymous: Principal) -> tuple[Key, int]:
    """The dedupe index's key and the emitter's seq of a WAL record, as `Intake._accepted` keyed it;
    `anonymous` stands for a record without a sender. Raises what decoding raises."""
    try:
        stored = _stored_decoder.decode(payload)
    except msgspec.ValidationError:
        # A record no sink can take either (no event, or an older agent's with a `sender` its
        # emitter made up): its header still says what it repeats.
        header = header_decoder.decode(payload)
        return (anonymous, header.emitter), header.seq
    sender = stored.event.sender
    return (anonymous if sender is None else principal(sender), stored.emitter), stored.seq


class Run(msgspec.Struct):
    """An emitter's stretch of transmissions received without a gap, which the intake confirms."""

    first: int
    last: int
    heard: float
    """When the last of them arrived (time.time())."""
    owner: Principal
    """The sender whose frames this run counts (a uid, or a CURVE key's name): only its frames extend
    it, so frames of another user under the same emitter id cannot make the intake confirm what the
    emitter's owner never sent."""
    refused: list[int] = msgspec.field(default_factory=list)
    """Its transmissions sent to rejects/ since its last confirmation went out (at most MAX_REFUSED)."""


class Intake:
    def __init__(  # noqa: PLR0915 - one statement for each part the intake holds, in the order they start
        self, config: AgentConfig, context: zmq.Context[zmq.Socket[bytes]], mailbox: Mailbox
    ) -> None:
        self.config = config
        self.settings = config.intake
        self.mailbox = mailbox
        self.layout = DataLayout(config.data_path)
        self.keyring = Keyring.load_or_create(
            config.keys_path, Rotation(config.keys.rotate_after_encryptions, config.keys.rotate_after_days)
        )
        self.blinding = load_blinding(config.keys_path, config.encryption.blind_index)
        self.wal = WriteAheadLog(self.layout.wal, config.wal, config.wal_readers())
        self.counters = IntakeCounters()
        self.index = self._load_index()
        self.rejects = RejectLog(self.layout.rejects, self.keyring.spool_public_key())
        self.subject_keys = (
            SubjectKeyring.load_or_create(self.keyring, config.subjects, self.counters)
            if config.subjects.per_subject_keys
            else None
        )
        self.runs: dict[str, Run] = {}
        self.pending: set[str] = set()
        self._sync_wanted = False
        # Frames taken off the socket that the WAL had no room for: not yet validated, tracked or
        # confirmed, as if still queued in the socket. They go first once the WAL has room.
        self._held: list[Incoming] = []
        self.senders, self.required_fields = Senders(), RequiredFields(config.frameworks)
        self._emitter_ids: set[str] = set()
        self.identities = Identities(
            self.settings.allowed_services(), flag=self.settings.identity_mismatch == "flag"
        )
        self.limits = RateLimits(
            self.settings.sender_rate,
            self.settings.sender_burst,
            self.settings.sender_byte_rate,
            self.settings.sender_byte_burst,
        )
        self._rate_warnings = WarningLimit(WARN_INTERVAL_S)
        self._next_forget = 0.0
        self._write_failure = WriteFailure("WAL append", log)
        self._index_failure = WriteFailure("saving the dedupe index", log)
        self._quarantine_warnings = WarningLimit(QUARANTINE_WARN_INTERVAL_S)
        self._stopping = False
        """A Stop came (or the supervisor is gone): the loop ends after the step it is in."""
        self._spool_dirs = self._spool_directories(config.spool_path, config.runtime_path)

        endpoint = config.intake_endpoint
        # Only a Unix socket's peer address carries credentials (a TCP one is an IP address).
        self._ipc = endpoint.startswith("ipc://")
        try:
            # Also here, not only when the file is read: AUDITSHIP_ENDPOINT and a config-less start
            # name the endpoint too.
            config.check_transport()
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        # Started before the sockets bind, so that no connection is ever made without the ZAP handler.
        self.curve = CurveGate(context, CurveKeys(config.curve_path)) if config.uses_curve else None
        self._unseal_event = (
            None
            if self.curve is None
            else functools.partial(self.curve.unsealer().unseal, source="sealed event")
        )
        self.pull = context.socket(zmq.PULL)
        self.pull.setsockopt(zmq.RCVHWM, self.settings.receive_hwm)
        self.pull.setsockopt(zmq.MAXMSGSIZE, self.settings.max_message_bytes)
        # Confirmations go to the connections that asked for them (routes.py), not to every subscriber.
        self.confirmations = context.socket(zmq.ROUTER)
        self.confirmations.setsockopt(zmq.SNDHWM, self.settings.send_hwm)
        self.confirmations.setsockopt(zmq.MAXMSGSIZE, MAX_HELLO_BYTES)
        # A send to a closed connection fails (EHOSTUNREACH) instead of vanishing: its route is removed.
        self.confirmations.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.routes = Routes()
        if self.curve is not None:
            self.curve.serve(self.pull)
            self.curve.serve(self.confirmations)
            self.curve.watch(self.pull)
        self.pull.bind(endpoint)
        self.confirmations.bind(endpoints.confirm_endpoint(endpoint))
        self.growth = GrowthAnnouncer(context, config.runtime_path)
        log.info(
            "intake listening on %s%s (WAL next seq %d)",
            endpoint,
            " with CURVE" if self.curve is not None else "",
            self.wal.next_lsn,
        )
        mailbox.ready()

    def _load_index(self) -> DedupeIndex:
        index, covered = DedupeIndex.load(self.layout.dedupe_index, self.settings.dedupe_horizon_s)
        now = time.time()
        # Records without a sender after an index of the older format are that agent's: its emitters'
        # sets are kept under LEGACY until their owner takes them over (see dedupe.py).
        anonymous = LEGACY if index.legacy_loaded else None
        first_failure = ""
        for record in self.wal.records_after(covered):
            try:
                key, seq = _dedupe_key(record.payload, anonymous)
            except Exception as exc:  # noqa: BLE001 - no record may keep the intake from starting
                # Damage on disk, or a record of an agent with other rules: sinks skip it too.
                self.counters.wal_undecodable += 1
                first_failure = first_failure or f"WAL seq {record.lsn}: {exc!r}"
                continue
            index.accept(key, seq, now)
        if first_failure:
            log.error(
                "replaying the WAL into the dedupe index: %d records undecodable, skipped (the first, %s); "
                "a resend of one of them is appended again",
                self.counters.wal_undecodable,
                first_failure,
            )
        return index

    def _spool_directories(self, spool: Path, runtime: Path) -> list[Path]:
        """Our spool, the runtime dir's overflow spool (where emitters spill when the spool's disk is
        full), and the runtime dir's `spool` when emitters made it a real directory before the agent
        could link it to ours."""
        directories = [spool, runtime / endpoints.OVERFLOW_NAME]
        runtime_spool = runtime / "spool"
        if runtime_spool.is_dir() and not runtime_spool.is_symlink():
            directories.append(runtime_spool)
        return directories

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.pull, zmq.POLLIN)
        poller.register(self.mailbox.socket, zmq.POLLIN)
        poller.register(self.confirmations, zmq.POLLIN)
        confirm_every = self.settings.confirm_interval_ms / 1000
        next_confirm = next_maintenance = next_spool = 0.0
        while not self._stopping and not self.mailbox.orphaned():
            paused = self._paused()
            poller.modify(self.pull, 0 if paused else zmq.POLLIN)
            appended = self.counters.appended
            # While paused the spool is not read: its scan is no deadline then.
            wake_at = next_maintenance if paused else min(next_maintenance, next_spool)
            ready = dict(poller.poll(max(1, int(self._idle_s(confirm_every, wake_at) * 1000))))
            if self.mailbox.socket in ready and self._stop_requested():
                break
            if self.pull in ready or (self._held and not paused):
                self._receive()
                if self._stopping:
                    break  # a Stop came while a WAL write was failing
            if self.confirmations in ready:
                self._hellos()
            now = time.monotonic()
            if now >= next_confirm:
                next_confirm = now + confirm_every
                self._confirm()
            self.wal.sync_if_due()
            if now >= next_spool and not paused:
                next_spool = now + self.settings.spool_scan_interval_s
                self._ingest_spool()
                if self._stopping:
                    break
            if now >= next_maintenance:
                next_maintenance = now + MAINTENANCE_INTERVAL_S
                self._maintain()
            if self.counters.appended != appended:
                self.growth.grew()
            self.mailbox.report(
                self._counters(),
                self.config.supervisor.stats_interval_s,
                problem=self._write_failure.problem or self._index_failure.problem,
            )
        self._shutdown()

    def _paused(self) -> bool:
        """Whether the WAL is over wal.max_bytes (the socket is then not read); each change is logged."""
        paused = self.wal.over_limit()
        if paused != bool(self.counters.paused):
            self.counters.paused = int(paused)
            log.warning(
                "WAL at %d bytes, wal.max_bytes is %d: %s",
                self.wal.size_bytes(),
                self.config.wal.max_bytes,
                "intake paused, emitters spill until sinks catch up" if paused else "intake resumed",
            )
        return paused

    def _idle_s(self, confirm_every: float, wake_at: float) -> float:
        """How long the loop may wait for its sockets: ticks of confirm_interval_ms while something waits
        to be confirmed or synced, else until `wake_at` (maintenance or the spool's scan), so that an
        idle agent costs nothing."""
        if self.pending or self._held or self.wal.unsynced:
            return confirm_every
        return wake_at - time.monotonic()

    def _stop_requested(self) -> bool:
        while (message := self.mailbox.receive()) is not None:
            if isinstance(message, Stop):
                self._stopping = True
        return self._stopping

    def _receive(self) -> None:
        frames, self._held = self._held, []
        held = bool(frames)  # held frames go alone: the WAL had no room for them a moment ago
        while not held and len(frames) < self.settings.batch_max:
            try:
                message = self.pull.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            frames.extend(self._limited(message))
        accepted, self._held = self._admit(frames, "socket")
        if not self._append(accepted):
            return
        if self._sync_wanted:
            # Acknowledged emits wait for this: one fsync for every one of them received together
            # (group commit), then their confirmations at once instead of at the next interval.
            self._sync_wanted = False
            self.wal.sync()
            self.counters.ack_syncs += 1
            self._confirm()

    def _limited(self, message: zmq.Frame) -> list[Incoming]:
        """The frames of `message` with their sender, less those over the sender's rate limit: those
        are counted and dropped unread, not tracked (the emitter sees the gap and sends them again, or
        spools them), so a flood costs the intake a lookup per frame and nobody else's share."""
        peer = _peer_address(message)
        frames = message_frames(message.bytes)
        now = time.monotonic()
        revoked = self._revoked_key(message)
        if revoked is not None:
            self._revoked(revoked, len(frames), now)
            return []
        sender = self._sender(message, peer)
        who = principal(sender)
        key = f"peer {peer}" if who is None else f"sender {who!r}"
        if self.limits.admit_all(key, now, len(frames), sum(map(len, frames))):
            admitted = [(raw, sender) for raw in frames]
        else:  # the buckets take part of the message: frame by frame, as far as they go
            admitted = [(raw, sender) for raw in frames if self.limits.admit(key, now, len(raw))]
        refused = len(frames) - len(admitted)
        if refused:
            self.counters.rate_limited += refused
            left_out = self._rate_warnings.admit(key, now)
            if left_out is not None:
                log.warning(
                    "sender %s is over intake.sender_rate=%g frames/s (burst %d) or sender_byte_rate=%g "
                    "bytes/s (burst %d): %d frames refused (its emitter sends them again or spools them)%s",
                    describe(sender) if sender is not None else peer,
                    self.limits.rate,
                    int(self.limits.burst),
                    self.limits.byte_rate,
                    int(self.limits.byte_burst),
                    refused,
                    f"; {left_out} more such messages since the last such line" if left_out else "",
                )
        return admitted

    def _sender(self, message: zmq.Frame, peer: str | None) -> Sender | None:
        """Who sent `message`: the kernel's credentials (ipc), the client key (CURVE), or nobody."""
        if self._ipc:
            return self.senders.of_peer(peer)
        if self.curve is not None:
            # The name ZAP gave the connection: every message on a CURVE socket has one.
            return self.senders.of_key(str(message.get("User-Id")))
        return None

    def _revoked_key(self, message: zmq.Frame) -> str | None:
        """The client key of `message` when it was revoked while its connection stayed open."""
        if self._ipc or self.curve is None:
            return None
        name = str(message.get("User-Id"))
        return None if self.curve.allows(name) else name

    def _hellos(self) -> None:
        """Record the routes of the hellos waiting (routes.py), each under its connection's sender, and
        confirm at once the run it asks for, if its sender owns one: after an agent restart, the
        emitter's hello is what it waited for."""
        for _ in range(MAX_HELLOS_PER_READ):
            try:
                parts = self.confirmations.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(parts) != 2 or self._revoked_key(parts[1]) is not None:
                continue
            route, body = parts[0].bytes, parts[1]
            peer = _peer_address(body)
            who = principal(self._sender(body, peer))
            key = f"peer {peer}" if who is None else f"sender {who!r}"
            if not self.limits.admit(key, time.monotonic(), len(body)):
                continue
            try:
                emitter = hello_decoder.decode(body.bytes).emitter
            except msgspec.DecodeError:  # ValidationError is one: a hello from something else
                continue
            self.routes.add(route, who, emitter)
            run = self.runs.get(emitter)
            if run is not None and run.owner == who:
                self._send_confirmation(run, [route])

    def _revoked(self, name: str, count: int, now: float) -> None:
        """Frames from a client key revoked while its connection was open (ZAP admitted it before):
        dropped unread and counted; its emitter spills them."""
        self.counters.curve_revoked += count
        left_out = self._rate_warnings.admit(f"revoked {name}", now)
        if left_out is not None:
            log.warning(
                "CURVE client %r is no longer in the allow-list: %d frames from its open connection "
                "dropped (its emitter spools them)%s",
                name,
                count,
                f"; {left_out} more such messages since the last such line" if left_out else "",
            )

    def _admit(self, frames: list[Incoming], source: str) -> tuple[list[bytes], list[Incoming]]:
        """Accept `frames` in order while the WAL has room: a frame is taken only while the WAL, with
        the frames taken before it, is below wal.max_bytes, so it passes the bound by less than one
        record. Returns what to append, and the frames left as they came. One frame at a time, since
        only an accepted frame's size (its sensitive values encrypted) says what it takes."""
        room = self.wal.room_bytes()
        accepted: list[bytes] = []
        now = time.time()
        for index, (raw, sender) in enumerate(frames):
            if room <= 0:
                return accepted, frames[index:]
            stored = self._accepted(raw, sender, source, now)
            if stored is not None:
                accepted.append(stored)
                room -= len(stored) + RECORD_OVERHEAD
        return accepted, []

    def _accepted(self, raw: bytes, sender: Sender | None, source: str, now: float) -> bytes | None:
        """Validate and deduplicate one frame; returns what goes into the WAL, or None (a repeat, or
        rejected). No frame can stop the intake: whatever goes wrong with one is its reject's reason."""
        self.counters.received += 1
        who = principal(sender)
        try:
            frame, stored = self._validated(self._opened(raw), sender)
        except FrameRejected as exc:
            self._reject(raw, source, str(exc), now, who)
            return None
        except Exception as exc:  # noqa: BLE001 - a bug met by one frame refuses that frame only
            self._reject(raw, source, f"frame could not be taken: {exc!r}", now, who)
            return None
        # tx numbers transmissions over the socket: a spooled frame was not transmitted, and
        # the number it carries may have gone to a later frame that was.
        if frame.tx and source == "socket":
            self._track(frame.emitter, who, frame.tx, now)
            # A repeat too: its first copy may be appended and not yet synced.
            self._sync_wanted |= frame.sync
        if not self.index.accept((who, frame.emitter), frame.seq, now):
            self.counters.repeats += 1
            return None
        return stored

    def _opened(self, raw: bytes) -> bytes:
        """The frame with its event opened when an emitter sealed it for the wire (TCP with CURVE:
        shipper.wire.sealed_frame); raises FrameRejected when it cannot be opened."""
        if self._unseal_event is None:
            return raw  # a sealed event on ipc is refused by the frame decoder: it is not an event
        try:
            return opened_frame(raw, self._unseal_event)
        except DecryptionError as exc:
            raise FrameRejected(str(exc)) from exc

    def _validated(self, raw: bytes, sender: Sender | None) -> tuple[Frame, bytes]:
        """The frame and what the WAL stores of it (stamped with `sender`, its sensitive values
        encrypted); raises FrameRejected with the reason. Everything that can fail happens here, before
        the frame counts as received from its emitter or as a seq seen."""
        limit = self.settings.max_frame_bytes
        if len(raw) > limit:
            raise FrameRejected(f"frame of {len(raw)} bytes exceeds intake.max_frame_bytes={limit}")
        frame = self._decoded(raw)
        event = frame.event
        if (reason := refusal(event)) is not None:
            raise FrameRejected(reason)
        if (reason := self.identities.refusal(sender, event.service_name)) is not None:
            self.counters.identity_mismatches += 1
            if not self.identities.flag:
                raise FrameRejected(reason)
            sender = msgspec.structs.replace(sender or Sender(), mismatch=True)
        if (missing := self.required_fields.missing(event)) is not None:
            self.counters.compliance_flagged += 1
            event.details = {**event.details, FLAG_KEY: missing}
        elif event.sender == sender and not event.sensitive:
            return frame, raw  # no sender to stamp (TCP) and none claimed: stored as it came
        # Whatever the emitter put in `sender` is replaced: only the kernel's word counts.
        event.sender = sender
        if event.sensitive:
            keys = self.keyring if self.subject_keys is None else self.subject_keys.keys_for(event)
            event = encrypt_sensitive(event, keys, self.blinding)
        # Frame's fields as a tuple, `sync` off: encoded as the array_like Frame is, without building one.
        return frame, frame_encoder.encode((frame.emitter, frame.seq, frame.tx, event, False))

    def _decoded(self, raw: bytes) -> Frame:
        """The frame, typed; raises FrameRejected with the reason. Its emitter id is matched against
        EmitterId's pattern (a regular expression, a quarter of what decoding the frame costs) once per
        id: a frame of an id not seen yet, and any frame the decode refuses, is decoded as a Frame, so
        that a reason is the same whichever way it came."""
        try:
            frame: Frame = checked_frame_decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            pass
        else:
            if frame.emitter in self._emitter_ids:
                return frame
        try:
            frame = frame_decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise FrameRejected(f"invalid frame: {exc}") from exc
        except RecursionError as exc:
            # msgspec recurses once per level of nesting, up to the interpreter's recursion limit.
            raise FrameRejected(f"invalid frame: nested too deep to decode ({exc})") from exc
        if len(self._emitter_ids) >= MAX_EMITTER_IDS:
            self._emitter_ids.clear()
        self._emitter_ids.add(frame.emitter)
        return frame

    def _reject(self, raw: bytes, source: str, reason: str, now: float, who: Principal) -> None:
        """To rejects/; and when the frame's header is readable, count its transmission as received, or
        its emitter would take the gap for a loss and send the same bad frame again and again."""
        self.rejects.write(raw, source, reason)
        try:
            header = header_decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return
        if header.tx and source == "socket" and self._track(header.emitter, who, header.tx, now):
            refused = self.runs[header.emitter].refused
            if len(refused) < MAX_REFUSED:
                refused.append(header.tx)

    def _track(self, emitter: str, who: Principal, tx: int, now: float) -> bool:
        """Extend the emitter's gap-free run, or start a new one after a gap (frames were lost). A run
        is its sender's: another sender's frames under the same id leave it alone until it has been idle
        RUN_IDLE_S (its confirmations go only to the owner's connections: routes.py). Whether the
        transmission counted."""
        run = self.runs.get(emitter)
        if run is not None and run.owner != who:
            return False
        if run is not None and tx == run.last + 1:
            run.last = tx
            run.heard = now
        else:
            self.runs[emitter] = Run(tx, tx, now, who)
        self.pending.add(emitter)
        return True

    def _append(self, payloads: list[bytes]) -> bool:
        """Append `payloads` to the WAL. A failed write (a full disk) is retried, holding the batch,
        without reading more, until it succeeds, or until a Stop comes: then False, with nothing of the
        batch in the WAL, confirmed or in the dedupe index (its emitters keep it, then spill it, to the
        overflow spool if this disk is full, and send it again)."""
        if not payloads:
            return True
        withdrawn: list[tuple[Key, int]] | None = None
        while True:
            try:
                self.wal.append(payloads)
            except OSError as exc:
                self.counters.write_errors += 1
                self._write_failure.failed(exc, f"{len(payloads)} events held, emitters spill")
                if withdrawn is None:
                    withdrawn = self._withdraw(payloads)
                # Sinks may have passed segments meanwhile: deleting them may be what frees the disk.
                # No confirmation meanwhile: runs already count the batch's transmissions.
                self._maintain(confirm=False)
                self.mailbox.report(
                    self._counters(),
                    self.config.supervisor.stats_interval_s,
                    problem=self._write_failure.problem or self._index_failure.problem,
                )
                if self._stop_during(RETRY_PAUSE_S):
                    log.warning(
                        "stopping with %d events not written to the WAL (%s): nothing of them was "
                        "confirmed; their emitters keep them, and spill them",
                        len(payloads),
                        exc,
                    )
                    return False
                continue
            self._write_failure.succeeded()
            now = time.time()
            for key, seq in withdrawn or ():
                self.index.accept(key, seq, now)
            self.counters.appended += len(payloads)
            return True

    def _withdraw(self, payloads: list[bytes]) -> list[tuple[Key, int]]:
        """Take the seqs of `payloads` out of the dedupe index, which accepted them before their append
        failed: saved meanwhile, the index must not say the WAL holds them. Returns what was taken out."""
        withdrawn = []
        for payload in payloads:
            try:
                key, seq = _dedupe_key(payload, None)
            except Exception as exc:  # noqa: BLE001 - the intake encoded it; not a reason to stop
                log.error("a held frame does not decode (%r); its seq stays in the dedupe index", exc)
                continue
            self.index.withdraw(key, seq)
            withdrawn.append((key, seq))
        return withdrawn

    def _stop_during(self, seconds: float) -> bool:
        """Wait `seconds` for a Stop on the mailbox; whether the intake is to stop (a Stop came, now or
        before, or the supervisor is gone)."""
        if self._stopping:
            return True
        if self.mailbox.socket.poll(int(seconds * 1000)):
            self._stop_requested()
        if self.mailbox.orphaned():
            self._stopping = True
        return self._stopping

    def _confirm(self, emitters: Iterable[str] | None = None) -> None:
        """Confirm the run of each emitter heard from since the last call (or of `emitters`) to its
        owner's connections. All of a run is in the WAL (written, and fsynced under wal.fsync =
        "always"): confirmations go out only after the loop's appends."""
        for emitter in self.pending if emitters is None else emitters:
            run = self.runs[emitter]
            self._send_confirmation(run, self.routes.of(run.owner, emitter))
        self.pending.clear()

    def _send_confirmation(self, run: Run, routes: list[bytes]) -> None:
        """Send `run`'s confirmation to `routes`; its refused transmissions are forgotten once one of
        them took it (until then they are told again with the next)."""
        payload = frame_encoder.encode(Confirmation(run.first, run.last, run.refused))
        delivered = False
        for route in routes:
            try:
                self.confirmations.send_multipart([route, payload], zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                if exc.errno == zmq.EHOSTUNREACH:  # the connection closed
                    self.routes.remove(route)
                # else its queue is full (EAGAIN): a later confirmation says the same, and more
                continue
            delivered = True
        if delivered:
            run.refused = []

    def _ingest_spool(self) -> None:
        claims = spool_pickup.claim(self._spool_dirs)
        if claims.failures:
            self._claim_failed(claims.failures)
        for path in claims.files:
            if not self._ingest_spool_file(path):
                return

    def _ingest_spool_file(self, path: Path) -> bool:
        """Append a claimed file's records and delete it, or move it to quarantine (with what its damage
        left, and on any failure met with it: no entry stops the intake). False when the WAL took only
        part of it (it stays claimed and is read again once the WAL has room; what of it is in the WAL by
        then is dropped as a repeat), or a Stop came."""
        progress = _SpoolProgress()
        try:
            unreadable = self._take_spooled(path, progress)
            if not progress.complete:
                if not self._stopping:
                    log.info(
                        "spool file %s: %d new events taken, the rest waits for room in the WAL",
                        path.name,
                        progress.count,
                    )
                return False
            # The file goes only once what it held is durable in the WAL.
            self.wal.sync()
            if unreadable is None:
                path.unlink()
                self.counters.spool_files += 1
                log.info("ingested spool file %s: %d new events", path.name, progress.count)
                return True
            reason = str(unreadable)
        except FileNotFoundError:
            log.warning("spool file %s is gone (removed by its owner?) while it was being taken", path)
            return True
        except Exception as exc:  # one entry's failure quarantines that entry only
            reason = f"{path.name}: cannot be ingested: {exc!r}"
            # With its traceback (a bug, or a fault to see), once a minute: an entry that cannot be moved
            # to quarantine either meets it again at every scan.
            kind = f"unexpected {type(exc).__name__}"
            if self._quarantine_warnings.admit(kind, time.monotonic()) is not None:
                log.error("spool file %s: unexpected failure; it goes to quarantine", path.name, exc_info=exc)
        self._quarantine(path, reason, progress.count)
        return True

    def _take_spooled(self, path: Path, progress: _SpoolProgress) -> UnreadableSpoolEntry | None:
        """Append `path`'s records to the WAL a batch at a time, up to the damage if there is one, which
        is returned; `progress` says what was taken."""
        source = f"spool:{spool_pickup.printable(path.name)}"
        frames: list[Incoming] = []
        unreadable = None
        records = spool_pickup.read(path, self.keyring, self.settings.max_spool_file_bytes)
        with contextlib.closing(records):
            try:
                for record in records:
                    if record.reason is not None:
                        self.rejects.write(record.frame, source, record.reason)
                        continue
                    frames.append((record.frame, self.senders.of_owner(*record.owner)))
                    if len(frames) >= self.settings.batch_max:
                        if not self._append_spooled(frames, source, progress):
                            return None
                        frames = []
            except UnreadableSpoolEntry as exc:
                unreadable = exc
        self._append_spooled(frames, source, progress)
        return unreadable

    def _claim_failed(self, failures: list[str]) -> None:
        """Entries that could not be claimed stay and are tried at each scan: one line a minute."""
        self.counters.spool_claim_failed += len(failures)
        left_out = self._quarantine_warnings.admit("claim", time.monotonic())
        if left_out is not None:
            log.error(
                "spool: %s; it stays where it is%s%s",
                failures[0],
                f" ({len(failures) - 1} more entries alike now)" if len(failures) > 1 else "",
                f"; {left_out} more such failures since the last such line" if left_out else "",
            )

    def _quarantine(self, path: Path, reason: str, count: int) -> None:
        """Out of the scans' way, kept whole for a person to look at (see spool_pickup.quarantine)."""
        try:
            target = spool_pickup.quarantine(path)
        except OSError as exc:
            # It stays and is met again at every scan: one line a minute, every failure counted.
            self.counters.spool_quarantine_failed += 1
            left_out = self._quarantine_warnings.admit("failed", time.monotonic())
            if left_out is not None:
                log.error(
                    "spool entry %s: %s (%d events taken before it); it cannot be moved to quarantine "
                    "(%s) and stays where it is%s",
                    path,
                    reason,
                    count,
                    exc,
                    f"; {left_out} more such failures since the last such line" if left_out else "",
                )
            return
        self.counters.spool_quarantined += 1
        log.error("spool entry %s; %d events taken before it; the entry is kept in %s", reason, count, target)

    def _append_spooled(self, frames: list[Incoming], source: str, progress: _SpoolProgress) -> bool:
        """Append what the WAL has room for; whether it took them all (what it did not take stays in the
        file), as `progress` says too."""
        accepted, left = self._admit(frames, source)
        if not self._append(accepted):
            progress.complete = False
            return False
        self.counters.spooled_in += len(accepted)
        progress.count += len(accepted)
        progress.complete = not left
        return progress.complete

    def _maintain(self, *, confirm: bool = True) -> None:
        """Save the dedupe index, then let the WAL delete what every sink has passed (in this order:
        the index must cover every record before the record can go); and say every run's confirmation
        again, unless `confirm` is False (a batch the runs count is not in the WAL yet)."""
        now = time.time()
        if now >= self._next_forget:
            self._next_forget = now + FORGET_INTERVAL_S
            self.index.forget_idle(now)
        self.limits.forget_full(time.monotonic())
        self.rejects.say_overdue()
        if self.curve is not None:
            self.curve.reload_if_changed()
            self.curve.note_refusals()
        # A forgotten run only costs the emitter a harmless resend of what it still holds.
        for emitter in [e for e, run in self.runs.items() if now - run.heard > RUN_IDLE_S]:
            del self.runs[emitter]
        # A confirmation dropped (a full queue, or no hello yet from a reconnecting emitter) is
        # made good by the next: say it all again.
        if confirm:
            self._confirm(list(self.runs))
        try:
            self.index.save(self.layout.dedupe_index, self.wal.next_lsn - 1)
        except OSError as exc:
            # A full disk: no segment may go before the index covers it; tried again each second.
            self._index_failure.failed(exc, "WAL segments are kept until it works")
            return
        self._index_failure.succeeded()
        self.wal.collect()

    def _counters(self) -> dict[str, int | float]:
        return {
            **msgspec.structs.asdict(self.counters),
            "rejected": self.rejects.count,
            "rejects_unwritten": self.rejects.unwritten,
            "rejects_over_cap": self.rejects.over_cap,
            "last_seq": self.wal.next_lsn - 1,
            "wal_bytes": self.wal.size_bytes(),
            "emitters": len(self.index),
            **({"tcp_refused": self.curve.refused} if self.curve is not None else {}),
        }

    def _shutdown(self) -> None:
        """Take what is already queued (briefly), confirm it, and close the WAL cleanly. When the WAL
        cannot be written, nothing is taken or confirmed: the runs count the batch that was held."""
        writable = self._write_failure.problem is None
        deadline = time.monotonic() + 1.0
        while writable and time.monotonic() < deadline and self.pull.poll(0) and not self.wal.over_limit():
            self._receive()
            writable = self._write_failure.problem is None
        self.wal.sync()
        if writable:
            self._confirm()
        self._maintain(confirm=writable)
        self.wal.close()
        self.keyring.close()
        self.mailbox.report(self._counters(), 0, force=True)
        self.pull.close(linger=0)
        self.confirmations.close(linger=500)
        self.growth.close()
        if self.curve is not None:
            self.curve.close()
        log.info("intake stopped at WAL seq %d", self.wal.next_lsn - 1)


class _SpoolProgress:
    """What of a spool file is in the WAL so far."""

    __slots__ = ("complete", "count")

    def __init__(self) -> None:
        self.count = 0
        """Its new events appended (repeats not counted)."""
        self.complete = True
        """False once the WAL did not take all that was offered (no room, or a Stop)."""


def _peer_address(message: zmq.Frame) -> str | None:
    try:
        return str(message.get("Peer-Address"))
    except zmq.ZMQError:  # libzmq sets it only when it could read the peer's address
        return None
