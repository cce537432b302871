"""Reading a small secret file (a key, a wrapped key) whole, without following a link, and warning when
anyone but its owner may read it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from auditship.ondisk.errors import KeyringError

logger = logging.getLogger("auditship.crypto")


def read_secret(path: Path, size: int) -> bytes:
    """The `size` bytes of the file at `path`; KeyringError naming it when it is missing, unreadable or of
    another size."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as file:
            status = os.fstat(fd)
            if status.st_size != size:
                raise KeyringError(f"{path}: expected a {size}-byte key, found {status.st_size} bytes")
            data = file.read()
    except FileNotFoundError as exc:
        raise KeyringError(f"{path}: key file is missing") from exc
    except OSError as exc:
        raise KeyringError(f"{path}: cannot read key file: {exc.strerror}") from exc
    if len(data) != size:  # it changed between fstat and read
        raise KeyringError(f"{path}: expected a {size}-byte key, read {len(data)} bytes")
    if status.st_mode & 0o077:
        logger.warning("%s: key file is accessible to group or others; it should be 0600", path)
    return data
