"""The Parquet sink's section, `[sinks.parquet]` (the seed has no setting for it: its defaults)."""

from __future__ import annotations

from auditship.agents.section import Positive
from auditship.agents.sinks.base import SinkConfig


class ParquetSinkConfig(SinkConfig):
    enabled: bool = True
    """Search and statistics (audit-query) read the lake."""
    path: str = "lake"
    """The lake's root; relative paths are under data_dir."""
    flush_interval_s: float = 2.0
    """A part is written at least this often while events arrive."""
    max_rows: Positive = 10_000
    """...or as soon as this many events are buffered (the sink's batch size). The worker holds a
    batch decoded, about 1.5 KB an event: 100,000 took its peak RSS to ~400 MiB, 10,000 to ~140."""
    max_partitions: Positive = 256
    """The most partitions (date=/service= directories) one batch writes a part into; the events of
    any more wait for the next batch, which follows at once (counted in `deferred` in `audit-agent
    status`). Each costs a file open through the write, an fsync and a rename: a batch of 5,000
    services took 19 s, and any sender can name a service."""
    compaction: bool = True
    """Merge the small parts of a closed hour into few large ones."""
