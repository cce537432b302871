"""The console sink prints each event as one line of text or JSON on the chosen stream."""

import io
import sys

import msgspec

from auditship.agents.sinks.base import Delivery
from auditship.agents.sinks.console.config import ConsoleSinkConfig
from auditship.agents.sinks.console.sink import ConsoleSink
from auditship.ondisk.lines import encode_text
from tests.agents.sinks.entries import entries


def test_text_lines_go_to_stdout(capsys):
    """By default each event is the file sink's text line, on stdout."""
    batch = entries(range(1, 4))
    sink = ConsoleSink(ConsoleSinkConfig())
    assert sink.write_batch(batch) is Delivery.DELIVERED

    out = capsys.readouterr()
    assert out.out == "".join(encode_text(e.lsn, e.event).decode() for e in batch)
    assert out.err == ""


def test_json_lines_can_go_to_stderr(capsys):
    """format = json, stream = stderr: JSON Lines with wal_seq on stderr."""
    sink = ConsoleSink(ConsoleSinkConfig(line_format="json", stream="stderr"))
    sink.write_batch(entries(range(7, 9)))
    lines = capsys.readouterr().err.splitlines()
    assert [msgspec.json.decode(line)["wal_seq"] for line in lines] == [7, 8]


def test_a_closed_stream_is_errored_not_raised(monkeypatch):
    """Writing to a stream that is gone returns ERRORED, so the runner retries instead of crashing."""
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    sink = ConsoleSink(ConsoleSinkConfig())
    assert sink.write_batch(entries(range(1, 2))) is Delivery.ERRORED
    sink.close()
