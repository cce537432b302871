"""Which sinks exist, and how a sink worker builds its sink and runner from the config.

Each sink module has `build(config) -> (sink, batch_size, flush_interval_s)`; it is imported only by
the worker (or command) that uses it, so the file sink's worker never loads httpx, nor the SIEM's
worker SQLAlchemy.
"""

from __future__ import annotations

import importlib

from auditship.agents.config import AgentConfig
from auditship.agents.mailbox import Mailbox
from auditship.agents.sinks.base import Sink
from auditship.agents.sinks.runner import SinkRunner

MODULES = {
    "file": "auditship.agents.sinks.file",
    "console": "auditship.agents.sinks.console",
    "sql": "auditship.agents.sinks.sql",
    "siem": "auditship.agents.sinks.siem",
    "syslog": "auditship.agents.sinks.syslog",
    "parquet": "auditship.agents.sinks.parquet.sink",
}


def build_sink(name: str, config: AgentConfig) -> tuple[Sink, int, float]:
    """The sink called `name`, its batch size and its flush interval."""
    if name not in MODULES:
        raise ValueError(f"unknown sink {name!r}; the sinks are {', '.join(MODULES)}")
    built: tuple[Sink, int, float] = importlib.import_module(MODULES[name]).build(config)
    return built


def build_runner(name: str, config: AgentConfig, mailbox: Mailbox) -> SinkRunner:
    sink, batch_size, flush_interval_s = build_sink(name, config)
    return SinkRunner(sink, config, mailbox, batch_size, flush_interval_s)
