"""Producer processes for end-to-end tests: each emits numbered events and reports its emitter's counters."""

from __future__ import annotations

import os
import time
from multiprocessing.queues import Queue
from typing import Any

import msgspec

from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType


def numbered_event(producer: str, number: int) -> AuditEvent:
    return AuditEvent(
        event_type=AuditEventType.DATA_READ,
        user_id=producer,
        resource_type="record",
        resource_id=str(number),
        details={"producer": producer, "n": number},
    )


def produce(
    env: dict[str, str],
    producer: str,
    count: int,
    results: Queue[Any],
    pace_every: int = 500,
    pace_s: float = 0.005,
) -> None:
    """Emit `count` events, pausing briefly every `pace_every` so an agent can keep up."""
    os.environ.update(env)
    emitter = Emitter()
    for number in range(count):
        emitter.emit(numbered_event(producer, number))
        if pace_every and number % pace_every == pace_every - 1:
            time.sleep(pace_s)
    emitter.close(timeout=30)
    results.put((producer, msgspec.structs.asdict(emitter.stats)))
