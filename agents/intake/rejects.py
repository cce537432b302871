"""rejects/: frames the intake refused, one JSON line each, with the reason, so nothing is silently lost."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import msgspec

KEPT_BYTES = 64 * 1024


class Reject(msgspec.Struct):
    time: float
    source: str
    reason: str
    size: int
    frame_b64: str
    """The frame's first KEPT_BYTES bytes, for forensics."""


class RejectLog:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0
        self._encoder = msgspec.json.Encoder()

    def write(self, frame: bytes | memoryview, source: str, reason: str) -> None:
        self.count += 1
        reject = Reject(
            time.time(), source, reason, len(frame), base64.b64encode(bytes(frame[:KEPT_BYTES])).decode()
        )
        path = self.directory / time.strftime("rejects-%Y%m%d.jsonl", time.gmtime())
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, self._encoder.encode(reject) + b"\n")
        finally:
            os.close(fd)
