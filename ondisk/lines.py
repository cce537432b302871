"""The line formats: how the file and console sinks write an event, as a JSON Lines record or one
readable line of text.

    json  {"event_type":"data_read",...,"wal_seq":17}
    text  2024-05-01T12:00:00.123Z HIGH data_read success user=alice resource=document/42 "Read it"
          ip=10.0.0.1 changes.title=Draft sensitive.ssn=aesgcm2:... id=0190... seq=17

Both end with the event's WAL sequence number: that is how the file sink, after a crash, finds the last
event it wrote, and how `audit-query` names a record. In text, every value that is not a plain word is
double-quoted with backslash escapes, and every non-printable character (newline, tab, the Unicode line
separators) is escaped, so one event is always exactly one line.

An event is any msgspec Struct with the fields `LineEvent` names (shipper.event.AuditEvent is the one):
this package sits below the event model, so it names the fields it reads rather than the class.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

import msgspec

LineFormat = Literal["json", "text"]


class LineEvent(Protocol):
    """What a line shows of an event."""

    @property
    def event_type(self) -> str: ...
    @property
    def event_id(self) -> str: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def severity(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def resource_type(self) -> str | None: ...
    @property
    def resource_id(self) -> str | None: ...
    @property
    def service_name(self) -> str | None: ...
    @property
    def details(self) -> Mapping[str, Any]: ...
    @property
    def changes(self) -> Mapping[str, Any]: ...
    @property
    def sensitive(self) -> Mapping[str, Any]: ...


LineEncoder = Callable[[int, LineEvent], bytes]
LinesEncoder = Callable[[Sequence[int], Sequence[LineEvent]], bytes]
EventT = TypeVar("EventT")

_json = msgspec.json.Encoder()
_event_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


class _Seq(msgspec.Struct):
    wal_seq: int


class _Written(msgspec.Struct):
    wal_seq: int
    event_id: str


_seq_decoder = msgspec.json.Decoder(_Seq)
_written_decoder = msgspec.json.Decoder(_Written)
_TEXT_SEQ = re.compile(rb" seq=(\d+)\Z")
# Greedy: the last ` id=` that the rest of the line fits, which is the event's own (a quoted value
# before it may hold " id=" too, escaped).
_TEXT_ID_SEQ = re.compile(rb'.* id=("(?:[^"\\]|\\.)*"|[^ "]+) seq=(\d+)\Z', re.DOTALL)
_ESCAPED = re.compile(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|.)")
_UNESCAPES = {"n": "\n", "r": "\r", "t": "\t"}
_BARE = re.compile(r'[^ "\\=]+')
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def line_encoder(line_format: LineFormat) -> LineEncoder:
    return encode_json if line_format == "json" else encode_text


def lines_encoder(line_format: LineFormat) -> LinesEncoder:
    """What writes a batch of events (`seqs[i]` the seq of `events[i]`) as the lines `line_encoder`'s
    function writes one by one, joined."""
    return encode_json_lines if line_format == "json" else encode_text_lines


def encode_json_lines(seqs: Sequence[int], events: Sequence[LineEvent]) -> bytes:
    """`encode_json` of each event, joined, for less CPU (an eighth fewer instructions per event): the
    encoder is called once for the batch (msgspec's encode_lines), and the sequence numbers are spliced
    into its output."""
    # msgspec escapes every control character within a string, so the only newlines are those that
    # encode_lines puts after each event, each right after the event's closing brace.
    bodies = _json.encode_lines(events).split(b"}\n")
    joined: list[bytes] = [b""] * (2 * len(events))
    joined[::2] = bodies[:-1]  # the last is what follows the last newline: nothing
    joined[1::2] = [b',"wal_seq":%d}\n' % seq for seq in seqs]
    return b"".join(joined)


def encode_text_lines(seqs: Sequence[int], events: Sequence[LineEvent]) -> bytes:
    return b"".join(map(encode_text, seqs, events))


def encode_json(seq: int, event: LineEvent) -> bytes:
    body = _json.encode(event)
    # An event always has `event_type`, so `body` is a non-empty object: splicing the sequence number in
    # before its closing brace is free, where a wider Struct would copy every event.
    return b'%s,"wal_seq":%d}\n' % (body[:-1], seq)


def encode_text(seq: int, event: LineEvent) -> bytes:
    words = [_timestamp(event.timestamp), event.severity.upper(), event.event_type, event.outcome]
    if event.user_id is not None:
        words.append(f"user={_token(event.user_id)}")
    if event.resource_type is not None or event.resource_id is not None:
        resource = "/".join(part for part in (event.resource_type, event.resource_id) if part is not None)
        words.append(f"resource={_token(resource)}")
    if event.service_name is not None:
        words.append(f"service={_token(event.service_name)}")
    if event.message:
        words.append(f'"{_escape(event.message)}"')
    for prefix, values in (("", event.details), ("changes.", event.changes), ("sensitive.", event.sensitive)):
        words.extend(f"{_token(prefix + str(key))}={_token(_text(value))}" for key, value in values.items())
    words.append(f"id={_token(event.event_id)}")
    words.append(f"seq={seq}")
    return (" ".join(words) + "\n").encode()


def seq_of_line(line: bytes) -> int | None:
    """The WAL sequence number at the end of a line in either format (without its newline), or None."""
    if line.startswith(b"{"):
        try:
            return _seq_decoder.decode(line).wal_seq
        except msgspec.DecodeError:
            return None
    match = _TEXT_SEQ.search(line)
    return int(match[1]) if match else None


def seq_and_id_of_line(line: bytes) -> tuple[int, str] | None:
    """The WAL sequence number and the event id of a line in either format (without its newline), or
    None when it has not both."""
    if line.startswith(b"{"):
        try:
            written = _written_decoder.decode(line)
        except msgspec.DecodeError:
            return None
        return written.wal_seq, written.event_id
    match = _TEXT_ID_SEQ.fullmatch(line)
    if match is None:
        return None
    token = match[1].decode(errors="replace")
    return int(match[2]), _unescape(token[1:-1]) if token.startswith('"') else token


def decode_json_line(line: bytes, event_type: type[EventT]) -> tuple[int, EventT]:
    """The sequence number and the event (an `event_type`) of a JSON Lines record; msgspec.DecodeError
    if it is not one."""
    decoder = _event_decoders.get(event_type)
    if decoder is None:
        decoder = _event_decoders[event_type] = msgspec.json.Decoder(event_type)
    return _seq_decoder.decode(line).wal_seq, decoder.decode(line)


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:  # the event model says UTC; a naive value is taken to be UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _json.encode(value).decode()


def _token(value: str) -> str:
    """`value` as one word: bare when it is plain, else double-quoted with escapes."""
    if _BARE.fullmatch(value) and value.isprintable():
        return value
    return f'"{_escape(value)}"'


def _escape(value: str) -> str:
    if value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return "".join(_escape_char(char) for char in value)


def _unescape(text: str) -> str:
    """The value `_escape` made `text` from."""
    return _ESCAPED.sub(
        lambda m: chr(int(m[1][1:], 16)) if len(m[1]) > 1 else _UNESCAPES.get(m[1], m[1]), text
    )


def _escape_char(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
