"""What travels between an emitter and the intake, and what the WAL and spool files store.

A `Frame` carries one event with the emitter's identity, the event's per-emitter sequence number
(`seq`, used by the intake to drop repeats) and the transmission number (`tx`: 1, 2, 3... over
everything the emitter hands to its socket, resends included, so that a confirmation names a stretch
of what the intake actually received).
"""

from __future__ import annotations

import msgspec

from shipper.event import AuditEvent


class Frame(msgspec.Struct, array_like=True):
    emitter: str
    seq: int
    tx: int
    event: AuditEvent


class FrameHeader(msgspec.Struct, array_like=True):
    """The first fields of a Frame; decoding only these skips the event (array_like ignores the rest)."""

    emitter: str
    seq: int
    tx: int


class Confirmation(msgspec.Struct, array_like=True):
    """The intake's watermark for one emitter: it received, without a gap, every transmission from
    `first` to `last`, and all of them are in the WAL.

    A transmission before `first` that the emitter still holds unconfirmed did not reach this run:
    it went to an agent that died, or was lost in a reconnection; the emitter sends it again."""

    first: int
    last: int


frame_encoder = msgspec.msgpack.Encoder()
frame_decoder = msgspec.msgpack.Decoder(Frame)
header_decoder = msgspec.msgpack.Decoder(FrameHeader)
confirmation_decoder = msgspec.msgpack.Decoder(Confirmation)
