"""CEF escaping: header fields and extension values escape differently, as the CEF standard says."""

from __future__ import annotations

import re

from auditship.agents.sinks.syslog.cef import encode_cef, extension_value, header_field
from shipper.event import AuditEvent, AuditEventType, AuditSeverity, Sender

_UNESCAPED_PIPE = re.compile(r"(?<!\\)(?:\\\\)*\|")
_KEY = re.compile(r"(?:^| )([A-Za-z0-9]+)=")


def parse_cef(text: str) -> tuple[list[str], dict[str, str]]:
    """A CEF reader written from the standard, independent of the encoder: the seven header fields
    and the extension's key/value pairs, unescaped."""
    assert text.startswith("CEF:")
    fields: list[str] = []
    rest = text
    for _ in range(7):
        cut = _field_end(rest)
        fields.append(re.sub(r"\\([\\|])", r"\1", rest[:cut]))
        rest = rest[cut + 1 :]
    extension: dict[str, str] = {}
    keys = [match for match in _KEY.finditer(rest) if not _escaped(rest, match.end() - 1)]
    for match, following in zip(keys, [*keys[1:], None], strict=True):
        value = rest[match.end() : following.start() if following else len(rest)]
        extension[match[1]] = _unescape_value(value)
    return fields, extension


def _field_end(text: str) -> int:
    index = 0
    while text[index] != "|":
        index += 2 if text[index] == "\\" else 1
    return index


def _escaped(text: str, index: int) -> bool:
    backslashes = len(text[:index]) - len(text[:index].rstrip("\\"))
    return backslashes % 2 == 1


def _unescape_value(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m[1], m[1]), value)


def test_header_fields_escape_pipe_and_backslash_keep_equals_and_cannot_hold_a_line_break() -> None:
    assert header_field("a|b\\c=d") == "a\\|b\\\\c=d"
    assert header_field("two\nlines\r") == "two lines "


def test_extension_values_escape_equals_backslash_and_line_breaks_and_keep_pipes() -> None:
    assert extension_value("a=b\\c|d") == "a\\=b\\\\c|d"
    assert extension_value("one\ntwo\rthree") == "one\\ntwo\\rthree"


def test_a_record_full_of_separators_reads_back_as_it_was_written() -> None:
    nasty = "x=1 | y\\z\nnext line = | \\"
    event = AuditEvent(
        event_type=AuditEventType.SECURITY_VIOLATION,
        severity=AuditSeverity.CRITICAL,
        service_name="pay|ments\\svc",
        service_version="1.0=final",
        message=nasty,
        user_id="eve=admin",
        source_ip="10.1.2.3",
        details={"query": "a=b|c"},
    )
    fields, extension = parse_cef(encode_cef(event).decode())
    assert fields == [
        "CEF:0",
        "auditship",
        "pay|ments\\svc",
        "1.0=final",
        "security_violation",
        nasty.replace("\n", " "),
        "10",
    ]
    assert extension["msg"] == nasty
    assert extension["suser"] == "eve=admin"
    assert extension["src"] == "10.1.2.3"
    assert extension["externalId"] == event.event_id
    assert extension["cs5Label"] == "data"
    assert '"query":"a=b|c"' in extension["cs5"]


def test_a_source_that_is_not_an_ip_address_is_sent_as_a_host_name() -> None:
    event = AuditEvent(event_type=AuditEventType.USER_LOGIN, source_ip="gateway.internal")
    _, extension = parse_cef(encode_cef(event).decode())
    assert "src" not in extension
    assert extension["shost"] == "gateway.internal"


def test_the_sender_the_agent_stamped_is_the_device_process_and_is_in_the_data() -> None:
    sender = Sender(uid=1001, pid=4242, user="payments")
    _, extension = parse_cef(
        encode_cef(AuditEvent(event_type=AuditEventType.DATA_READ, sender=sender)).decode()
    )
    assert extension["dvcpid"] == "4242"
    assert '"sender":{"uid":1001,"pid":4242,"user":"payments"}' in extension["cs5"]
