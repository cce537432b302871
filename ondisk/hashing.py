"""SHA-256 of files as digests name them: a whole file, or its first `size` bytes (the current file's
prefix a digest claims). One place, so that the agent and `audit-query verify` hash alike."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def sha256_file(path: Path, size: int | None = None) -> tuple[int, str]:
    """(bytes hashed, hex SHA-256) of `path`, or of its first `size` bytes: fewer when it is shorter.
    Raises OSError. hashlib releases the GIL on large buffers, so threads hash files in parallel."""
    digest = hashlib.sha256()
    read = 0
    with path.open("rb", buffering=0) as file:
        while size is None or read < size:
            chunk = file.read(CHUNK if size is None else min(CHUNK, size - read))
            if not chunk:
                break
            digest.update(chunk)
            read += len(chunk)
    return read, digest.hexdigest()
