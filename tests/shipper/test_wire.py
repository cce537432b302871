"""Splitting an intake message into frames: a batch, a single frame, or anything else handed back whole."""

from __future__ import annotations

import os

import msgspec
import pytest

from shipper.event import AuditEvent, AuditEventType
from shipper.wire import Frame, encode_batch, frame_decoder, frame_encoder, message_frames


def frame(seq: int) -> bytes:
    return frame_encoder.encode(Frame("e", seq, seq, AuditEvent(event_type=AuditEventType.HEARTBEAT)))


def test_a_batch_is_split_into_its_frames_and_a_single_frame_comes_back_as_it_is() -> None:
    """Three frames in a batch give those three; one frame alone gives itself."""
    frames = [frame(n) for n in (1, 2, 3)]
    assert message_frames(encode_batch(frames)) == frames
    assert message_frames(frames[0]) == [frames[0]]


def test_a_message_nested_deeper_than_the_decoder_recurses_comes_back_whole() -> None:
    """A 1 KB message of 1,000 nested arrays makes msgspec stop at the recursion limit: the message comes
    back whole, for the frame decoder to refuse with its reason, instead of raising."""
    message = b"\x91" * 1000 + b"\xc0"
    assert message_frames(message) == [message]
    deep_frame = b"\x94\xa1e\x01\x01" + message  # a frame whose event is the nesting
    assert message_frames(deep_frame) == [deep_frame]


def test_garbage_comes_back_whole() -> None:
    """Bytes that are no msgpack at all (0xc1 is a type byte msgpack never uses): one frame, for the
    decoder to refuse."""
    garbage = b"\xc1" + os.urandom(64)
    assert message_frames(garbage) == [garbage]


def test_an_emitter_id_is_bounded_in_length_and_alphabet() -> None:
    """A 400-character id, an empty one, or one with a slash is refused by the typed decode itself,
    naming the field; a real one (16 hex digits) passes."""
    for bad in ("x" * 400, "", "a/b"):
        with pytest.raises(msgspec.ValidationError, match=r"\$\[0\]"):
            frame_decoder.decode(msgspec.msgpack.encode([bad, 1, 0, {"event_type": "data_read"}]))
    frame = frame_decoder.decode(
        msgspec.msgpack.encode(["0123456789abcdef", 1, 0, {"event_type": "data_read"}])
    )
    assert frame.emitter == "0123456789abcdef"
