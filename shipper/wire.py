"""What travels between an emitter and the intake, and what the WAL and spool files store.

A `Frame` carries one event with the emitter's identity, the event's per-emitter sequence number
(`seq`, used by the intake to drop repeats) and the transmission number (`tx`, bumped each time the
event is sent again, so that a confirmation names a point in what the intake actually received).
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
    """The intake's watermark for one emitter: every transmission up to `tx` sent to the intake
    instance `instance` is in the WAL. A new `instance` means the agent restarted."""

    instance: str
    tx: int


frame_encoder = msgspec.msgpack.Encoder()
frame_decoder = msgspec.msgpack.Decoder(Frame)
header_decoder = msgspec.msgpack.Decoder(FrameHeader)
confirmation_decoder = msgspec.msgpack.Decoder(Confirmation)
