"""The console sink: each event as a line of text or JSON on stdout or stderr, for development.

It shares the line formats with the file sink (ondisk/lines.py). Sensitive values are shown as their
envelopes: the console has no keyring, and a terminal's scrollback is no place for them.
"""

from __future__ import annotations

import contextlib
import logging
import sys

from auditship.agents.config import AgentConfig
from auditship.agents.sinks.base import BuiltSink, Delivery, Entry, Sink
from auditship.agents.sinks.console.config import ConsoleSinkConfig
from auditship.ondisk.lines import line_encoder

logger = logging.getLogger("auditship.sinks.console")


class ConsoleSink(Sink):
    name = "console"

    def __init__(self, config: ConsoleSinkConfig) -> None:
        self._config = config
        self._encode = line_encoder(config.line_format)

    def open(self) -> None:
        pass

    def write_batch(self, batch: list[Entry]) -> Delivery:
        # Looked up at each batch, not kept: a test or a host process may have replaced the stream.
        stream = sys.stdout if self._config.stream == "stdout" else sys.stderr
        text = b"".join(self._encode(entry.lsn, entry.event) for entry in batch).decode()
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed
            logger.warning(
                "console sink: cannot write to %s: %s; the batch is retried", self._config.stream, exc
            )
            return Delivery.ERRORED
        return Delivery.DELIVERED

    def close(self) -> None:
        stream = sys.stdout if self._config.stream == "stdout" else sys.stderr
        # A stream that is gone has nothing left to deliver to.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def build(config: AgentConfig) -> BuiltSink:
    settings = config.sinks.console
    return BuiltSink(ConsoleSink(settings), settings.batch_size, settings.flush_interval_s)
