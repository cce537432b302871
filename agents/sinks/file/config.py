"""The file sink's section, `[sinks.file]`, and what the seed's settings make of it."""

from __future__ import annotations

from typing import Literal, Self

import msgspec

from auditship.agents.section import Positive
from auditship.agents.sinks.base import SinkConfig
from shipper.seed import SeedSettings


class FileSinkConfig(SinkConfig):
    enabled: bool = True
    path: str = "files/audit.jsonl"
    """The current file; relative paths are under data_dir. Closed files sit beside it."""
    line_format: Literal["json", "text"] = msgspec.field(default="json", name="format")
    """`json`: JSON Lines, what `audit-query` reads; `text`: one readable line per event."""
    max_file_size: Positive = 100 * 1024 * 1024
    """The current file is closed and compressed after the batch that takes it past this size."""
    max_files: Positive = 10
    """Closed files kept; the oldest beyond this are deleted."""
    compression: Literal["zstd", "gzip", "none"] = "zstd"
    encrypt_sensitive: bool = True
    """False is a deliberate opt-out: `sensitive` values are decrypted and written in plaintext."""
    fsync: bool = True
    """fsync each batch before it counts as delivered. False is faster and still safe against a crash of
    the agent (the kernel keeps the bytes), but a power cut can lose the last batches written."""
    batch_size: Positive = 1000
    flush_interval_s: float = 0.5
    """How long to wait for a fuller batch; 0 writes whatever has arrived at once. Each batch costs a
    write, an fsync, a cursor commit and the wake-ups around them: at 5,000 events a second the sink took
    about 13 µs of CPU an event with 0.1 s, 9.5 with 0.5 s (batches of 1,000). The WAL holds the events
    meanwhile, so this is the file's lag, not a window of loss."""

    @classmethod
    def from_seed(cls, seed: SeedSettings) -> Self:
        """On with `enable_file_logging`, or with a FileAuditDestination, whose settings win; AuditConfig's
        `log_file_path`, `max_file_size`, `max_files`, `encrypt_sensitive_data` and `batch_size`."""
        file = cls(
            enabled=seed.enable_file_logging,
            max_file_size=seed.max_file_size,
            max_files=seed.max_files,
            encrypt_sensitive=seed.encrypt_sensitive_data,
            batch_size=seed.batch_size,
        )
        if seed.log_file_path is not None:
            file.path = seed.log_file_path
        if (destination := seed.file_destination) is not None:
            file.enabled = True
            file.path = destination.path
            file.max_file_size = destination.max_file_size
            file.max_files = destination.max_files
            file.encrypt_sensitive = destination.encrypt_sensitive
        return file
