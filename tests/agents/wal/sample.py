"""What the WAL tests write: numbered payloads, a writer with test settings, where records sit on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from auditship.agents.config import WalConfig
from auditship.agents.wal import WriteAheadLog
from auditship.agents.wal.record import LSN
from shipper.records import HEADER


def payload_for(number: int, size: int = 48) -> bytes:
    """The payload numbered `number`: it names its number, so a mix-up shows in a failure."""
    return f"payload-{number}|".encode().ljust(size, b".")


def open_wal(directory: Path, sinks: tuple[str, ...] = ("file",), **settings: Any) -> WriteAheadLog:
    return WriteAheadLog(directory, WalConfig(**{"fsync": "never", **settings}), sinks)


def on_disk_size(payload: bytes) -> int:
    return HEADER.size + LSN.size + len(payload)


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wal"))
