"""Which sinks exist, and how a sink worker builds its sink and runner from the config."""

from __future__ import annotations

from agents.config import AgentConfig
from agents.crypto.keyring import Keyring
from agents.layout import DataLayout
from agents.mailbox import Mailbox
from agents.sinks.base import Sink
from agents.sinks.runner import SinkRunner


def build_sink(name: str, config: AgentConfig) -> tuple[Sink, int]:
    """The sink called `name` and its batch size."""
    if name == "file":
        from agents.sinks.file import FileSink

        layout = DataLayout(config.data_path)
        return FileSink(
            config.sinks.file, layout.root, Keyring.load_or_create(layout.keys)
        ), config.sinks.file.batch_size
    if name == "console":
        from agents.sinks.console import ConsoleSink

        return ConsoleSink(config.sinks.console), config.sinks.console.batch_size
    raise ValueError(f"unknown sink {name!r}")


def build_runner(name: str, config: AgentConfig, mailbox: Mailbox) -> SinkRunner:
    sink, batch_size = build_sink(name, config)
    return SinkRunner(sink, config, mailbox, batch_size)
