"""`WorkerSpec`: what the supervisor starts a worker process as, and what that process is told it is."""

from __future__ import annotations

from typing import Literal

import msgspec


class WorkerSpec(msgspec.Struct, frozen=True):
    name: str
    role: Literal["intake", "sink", "detect"]
    sink: str = ""
