"""The data directory: where it is by default, and its layout (see DESIGN.md), in one place."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

DEFAULT_DATA_DIR = "./auditship-data"


def data_dir(configured: str = DEFAULT_DATA_DIR) -> Path:
    """The data directory, absolute: $AUDITSHIP_DATA_DIR, else `configured` (the agent's `data_dir`)."""
    return Path(os.environ.get("AUDITSHIP_DATA_DIR") or configured).absolute()


class DataLayout(msgspec.Struct, frozen=True):
    root: Path

    @property
    def wal(self) -> Path:
        return self.root / "wal"

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def rejects(self) -> Path:
        return self.root / "rejects"

    @property
    def deadletters(self) -> Path:
        return self.root / "deadletters"

    @property
    def keys(self) -> Path:
        """Where the field keys were before `keys_dir` (the agent moves them out at start), and where the
        CURVE keys are by default (`keys/curve`)."""
        return self.root / "keys"

    @property
    def digests(self) -> Path:
        """The signed, chained digests of the sinks' files and parts, one directory per sink."""
        return self.root / "digests"

    @property
    def workers(self) -> Path:
        """One lock per worker, held for its life: how a starting supervisor finds an earlier one's."""
        return self.root / "workers"

    @property
    def detect(self) -> Path:
        """The detector's saved state."""
        return self.root / "detect"

    @property
    def holds(self) -> Path:
        """The legal holds (`audit-agent hold`), which retention does not remove events under."""
        return self.root / "holds.json"

    @property
    def dedupe_index(self) -> Path:
        return self.wal / "emitters.index"

    def prepare(self) -> None:
        """Create the directories, owner-only whatever the umask."""
        for directory in (self.root, self.wal, self.files, self.rejects):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o700)
