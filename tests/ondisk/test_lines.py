"""Both formats put one event on one line, ending with the WAL sequence number the sink reads back."""

from datetime import datetime

import msgspec

from auditship.ondisk.lines import (
    decode_json_line,
    encode_json,
    encode_json_lines,
    encode_text,
    encode_text_lines,
    seq_and_id_of_line,
    seq_of_line,
)
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity


def test_a_json_line_is_the_event_plus_its_wal_seq():
    """The JSON line holds every field of the event and `wal_seq`, and decodes back to the event."""
    event = AuditEvent(event_type=AuditEventType.DATA_UPDATE, user_id="alice", changes={"title": ["a", "b"]})
    line = encode_json(42, event)

    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert msgspec.json.decode(line)["wal_seq"] == 42
    assert decode_json_line(line, AuditEvent) == (42, event)
    assert seq_of_line(line.rstrip(b"\n")) == 42


def test_a_text_line_reads_as_a_sentence_and_ends_with_the_seq():
    """Timestamp, severity, type, outcome, user, resource, message, details, id and seq, in order."""
    event = AuditEvent(
        event_type=AuditEventType.ACCESS_DENIED,
        event_id="abc",
        timestamp=datetime.fromisoformat("2024-05-01T12:00:00.123456+00:00"),
        severity=AuditSeverity.HIGH,
        outcome=AuditOutcome.FAILURE,
        user_id="alice",
        resource_type="document",
        resource_id="42",
        message="not yours",
        details={"ip": "10.0.0.1", "attempts": 3},
    )
    assert encode_text(7, event) == (
        b'2024-05-01T12:00:00.123Z HIGH access_denied failure user=alice resource=document/42 "not yours" '
        b"ip=10.0.0.1 attempts=3 id=abc seq=7\n"
    )


def test_text_escapes_everything_that_could_break_the_line():
    """Newlines, tabs, quotes, backslashes and Unicode line separators are escaped: still one line."""
    nasty = 'a\nb\rc\td"e\\f\u2028g\x00h\x1bi'
    event = AuditEvent(
        event_type=AuditEventType.DATA_READ,
        message=nasty,
        user_id="mallory\n2024-01-01T00:00:00Z CRITICAL forged seq=999999",
        details={nasty: nasty, "nested": {"x": "line\nbreak"}},
    )
    line = encode_text(5, event)

    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert len(line.decode().splitlines()) == 1
    text = line.decode()
    assert '"a\\nb\\rc\\td\\"e\\\\f\\u2028g\\x00h\\x1bi"' in text
    assert 'user="mallory\\n2024-01-01T00:00:00Z CRITICAL forged seq=999999"' in text
    assert seq_of_line(line.rstrip(b"\n")) == 5


def test_text_quotes_values_with_spaces_or_equals_signs():
    """A value or key that is not a plain word is quoted, so key=value pairs split unambiguously."""
    event = AuditEvent(event_type=AuditEventType.DATA_READ, details={"a b": "c=d", "plain": "word"})
    text = encode_text(1, event).decode()
    assert '"a b"="c=d"' in text
    assert " plain=word " in text


def test_sensitive_values_show_as_they_are_in_the_event():
    """Text shows sensitive values under `sensitive.`; the sink decides whether they are envelopes."""
    event = AuditEvent(event_type=AuditEventType.DATA_READ, sensitive={"ssn": "aesgcm1:f-00000000:xyz"})
    assert b" sensitive.ssn=aesgcm1:f-00000000:xyz " in encode_text(1, event)


def test_a_naive_timestamp_is_written_as_utc():
    """A timestamp without a zone is taken to be UTC and still gets its Z."""
    event = AuditEvent(event_type=AuditEventType.HEARTBEAT, timestamp=datetime(2024, 1, 2, 3, 4, 5))
    assert encode_text(1, event).startswith(b"2024-01-02T03:04:05.000Z INFO heartbeat success")


def test_lines_without_a_sequence_number_are_recognised():
    """seq_of_line says None for lines the sink did not write."""
    assert seq_of_line(b'{"event_type":"heartbeat"}') is None
    assert seq_of_line(b"{not json") is None
    assert seq_of_line(b"hello world") is None


def test_the_seq_and_the_event_id_are_read_back_from_either_format():
    """seq_and_id_of_line gives back the seq and the event id a line was written with, in both formats,
    whatever the id holds (quotes, spaces, line breaks, text that looks like ` id=`); None for a line
    without them."""
    for event_id in ("01a2b3c4", 'a id=b" seq=3', "x\ny\t\\z \u2028", ""):
        event = AuditEvent(event_type=AuditEventType.DATA_READ, event_id=event_id, message="m id=q seq=4")
        for encode in (encode_json, encode_text):
            assert seq_and_id_of_line(encode(17, event)[:-1]) == (17, event_id), (encode, event_id)
    assert seq_and_id_of_line(b'{"wal_seq":3}') is None
    assert seq_and_id_of_line(b"hello world seq=3") is None


def test_a_batch_of_lines_is_its_events_lines_joined() -> None:
    """The batch encoders write byte for byte what the one-event encoders write, joined: also for values
    holding braces, newlines and the end of a line as text."""
    events = [
        AuditEvent(event_type=AuditEventType.DATA_READ, message='}\n{"wal_seq":1}\n', details={"x": "}\n"}),
        AuditEvent(
            event_type=AuditEventType.USER_LOGIN, changes={"a": ["}", "\n"]}, sensitive={"s": "\u2028}"}
        ),
        AuditEvent(event_type=AuditEventType.DATA_UPDATE),
    ]
    seqs = [3, 9, 10**15]
    assert encode_json_lines(seqs, events) == b"".join(map(encode_json, seqs, events))
    assert encode_text_lines(seqs, events) == b"".join(map(encode_text, seqs, events))
    assert encode_json_lines([], []) == encode_text_lines([], []) == b""
