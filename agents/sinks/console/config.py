"""The console sink's section, `[sinks.console]`, and what the seed's settings make of it."""

from __future__ import annotations

from typing import Literal, Self

import msgspec

from auditship.agents.section import Positive
from auditship.agents.sinks.base import SinkConfig
from shipper.seed import SeedSettings


class ConsoleSinkConfig(SinkConfig):
    enabled: bool = False
    """For development: each event on the terminal."""
    line_format: Literal["json", "text"] = msgspec.field(default="text", name="format")
    stream: Literal["stdout", "stderr"] = "stdout"
    batch_size: Positive = 1000
    flush_interval_s: float = 0.0
    """How long to wait for a fuller batch; 0 writes whatever has arrived at once."""

    @classmethod
    def from_seed(cls, seed: SeedSettings) -> Self:
        """On with `enable_console_logging`."""
        return cls(enabled=seed.enable_console_logging)
