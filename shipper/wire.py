"""What travels between an emitter and the intake, and what the WAL and spool files store.

A `Frame` carries one event with the emitter's identity, the event's per-emitter sequence number
(`seq`, used by the intake to drop repeats) and the transmission number (`tx`: 1, 2, 3... over
everything the emitter hands to its socket, resends included, so that a confirmation names a stretch
of what the intake actually received), and `sync`, which asks the intake to fsync the WAL before it
confirms the frame (an acknowledged emit). Fields are only ever added at the end: a decoder ignores
trailing fields it does not know, so an older agent reads a newer emitter's frames.

A message to the intake holds one frame, or an emitter's batch: a msgpack array of frames. The
frames of a batch are stored one by one (in the WAL, in the spool) exactly as they were sent. Over TCP,
the event of a frame with sensitive values travels sealed to the agent (shipper.spool_seal): a msgpack
bin in the event's place, which the intake opens before anything else (`sealed_frame`, `opened_frame`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Annotated

import msgspec

from shipper.event import AuditEvent

# An emitter id is 16 hex digits (os.urandom(8).hex()); the bound keeps a sender from filling the
# intake's dedupe index with huge or endless ids.
EmitterId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern="^[0-9A-Za-z_.-]+$")]


class Frame(msgspec.Struct, array_like=True):
    emitter: EmitterId
    seq: int
    tx: int
    event: AuditEvent
    sync: bool = False
    """Set by an acknowledged emit: the intake fsyncs the WAL before it confirms this frame."""


class CheckedFrame(Frame, array_like=True):
    """A Frame whose emitter id is not matched against EmitterId's pattern (a regular expression, a
    quarter of what decoding a frame costs): for frames whose id the intake has matched already, as it
    did for every frame in the WAL."""

    emitter: str


class EncodedFrame(msgspec.Struct, array_like=True):
    """A Frame whose event stays msgpack: decoding one skips the event, encoding one copies it. What
    renumbering a frame for a resend needs."""

    emitter: EmitterId
    seq: int
    tx: int
    event: msgspec.Raw
    sync: bool = False


class FrameHeader(msgspec.Struct, array_like=True):
    """The first fields of a Frame; decoding only these skips the event (array_like ignores the rest)."""

    emitter: EmitterId
    seq: int
    tx: int


class Confirmation(msgspec.Struct, array_like=True):
    """The intake's watermark for one emitter: it received, without a gap, every transmission from
    `first` to `last`, and all of them are in the WAL, except those in `refused`: transmissions of this
    run the intake sent to its rejects/ since it last published (an event it could not take).

    A transmission before `first` that the emitter still holds unconfirmed did not reach this run:
    it went to an agent that died, or was lost in a reconnection; the emitter sends it again."""

    first: int
    last: int
    refused: list[int] = msgspec.field(default_factory=list)


class Hello(msgspec.Struct, array_like=True):
    """What an emitter sends on the confirmation socket (a DEALER to the intake's ROUTER) when it connects,
    and again when confirmations stop coming: the id whose confirmations it wants. The intake sends a
    run's confirmations only to connections that said hello with its emitter id and whose sender (the
    kernel's uid, or the CURVE key) is the run's owner (agents/intake/routes.py)."""

    emitter: EmitterId


frame_encoder = msgspec.msgpack.Encoder()
frame_decoder = msgspec.msgpack.Decoder(Frame)
checked_frame_decoder = msgspec.msgpack.Decoder(CheckedFrame)
header_decoder = msgspec.msgpack.Decoder(FrameHeader)
confirmation_decoder = msgspec.msgpack.Decoder(Confirmation)
hello_decoder = msgspec.msgpack.Decoder(Hello)
encoded_frame_decoder = msgspec.msgpack.Decoder(EncodedFrame)
batch_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])
# The msgpack type bytes of an array: a batch's first element is a frame (an array), a frame's first
# element is its emitter id (a string).
_ARRAY_TYPES = frozenset((*range(0x90, 0xA0), 0xDC, 0xDD))
_BIN_TYPES = frozenset((0xC4, 0xC5, 0xC6))
_sealed_decoder = msgspec.msgpack.Decoder(bytes)
_ARRAY32 = struct.Struct(">BI")


BATCH_BYTES = 4 * 1024 * 1024
"""An emitter sends its batch once it holds this many bytes, whatever `batch_max` says: the intake's
`max_message_bytes` (8 MiB by default) stays above a batch plus one frame of `max_frame_bytes`, so that
the intake can refuse any larger message before allocating it."""


def encode_batch(frames: list[bytes]) -> bytes:
    """One message for many encoded frames: a batch costs the sender one socket call, not one per frame.

    The frames are joined behind a msgpack array header (type 0xdd, a 32-bit count): they are msgpack
    already, and joining them costs a twentieth of encoding them again as msgspec.Raw values. The header
    is joined with them, not added to their join: that would copy the whole batch once more."""
    return b"".join([_ARRAY32.pack(0xDD, len(frames)), *frames])


def message_frames(message: bytes) -> list[bytes]:
    """The frames of one intake message, a batch or a single frame. A message that is neither comes
    back whole, as one frame, for the frame decoder to reject with its reason; so does one nested deeper
    than msgspec can skip (it recurses once per level, up to the interpreter's recursion limit)."""
    try:
        parts = batch_decoder.decode(message)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return [message]
    if not parts or memoryview(parts[0])[0] in _ARRAY_TYPES:
        return [bytes(part) for part in parts]
    return [message]


def sealed_frame(frame: bytes, seal: Callable[[bytes], bytes]) -> bytes:
    """`frame` with its event sealed (`seal` of the event's msgpack, as a bin in the event's place):
    the header stays readable, so the intake can count and confirm the frame even if it cannot open it."""
    parts = encoded_frame_decoder.decode(frame)
    sealed = msgspec.Raw(frame_encoder.encode(seal(bytes(parts.event))))
    return frame_encoder.encode(msgspec.structs.replace(parts, event=sealed))


def opened_frame(frame: bytes, unseal: Callable[[bytes], bytes]) -> bytes:
    """`frame` with its sealed event opened by `unseal`; `frame` itself when its event is not sealed,
    or when it does not decode as a frame at all (the frame decoder then says why). Raises what
    `unseal` raises."""
    try:
        parts = encoded_frame_decoder.decode(frame)
        event = memoryview(parts.event)
        if not event or event[0] not in _BIN_TYPES:
            return frame
        sealed = _sealed_decoder.decode(event)
    except (msgspec.DecodeError, RecursionError):
        return frame
    return frame_encoder.encode(msgspec.structs.replace(parts, event=msgspec.Raw(unseal(sealed))))
