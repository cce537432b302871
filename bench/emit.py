"""The cost of one emit() call, side by side with stdlib logging and with the floor.

- auditship: `emit(event)` to a real agent (window, confirmations and all).
- floor: msgspec-encode the same prebuilt event and send it on a bare ZeroMQ PUSH socket.
- stdlib logging: `logger.info(..., extra=...)` with a JSON formatter to a FileHandler.

Calls are timed one by one in bursts of 2,000; between bursts the emitter is flushed (outside the
timing), so what is measured is the steady-state call, not a full window spilling.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import zmq

from bench.harness import percentiles, running_agent
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType

BURST = 2_000


def sample_event() -> AuditEvent:
    return AuditEvent(
        event_type=AuditEventType.API_REQUEST,
        message="GET /api/users/{user_id}",
        user_id="user123",
        source_ip="192.168.1.100",
        service_name="user-service",
        method="GET",
        endpoint="/api/users/{user_id}",
        status_code=200,
        duration_ms=12.5,
        details={"route": "/api/users/{user_id}", "attempt": 1},
    )


def _time_calls(call: Callable[[], None], calls: int, between: Callable[[], None]) -> list[int]:
    samples: list[int] = []
    clock = time.perf_counter_ns
    while len(samples) < calls:
        for _ in range(BURST):
            start = clock()
            call()
            samples.append(clock() - start)
        between()
    return samples


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__.get("audit", {})
        return json.dumps(
            {"time": record.created, "level": record.levelname, "msg": record.getMessage(), **fields}
        )


def run(calls: int) -> None:
    event = sample_event()
    with running_agent('[wal]\nfsync = "never"\n') as (config, _agent):
        emitter = Emitter(config.intake_endpoint)
        emitter.emit(event)
        emitter.flush(5)
        ours = _time_calls(lambda: emitter.emit(event), calls, lambda: emitter.flush(10))
        stats = emitter.stats
        emitter.close()

        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        # The same transport as the agent's intake: ipc beside it.
        floor_endpoint = config.intake_endpoint.replace("intake.sock", "floor.sock")
        drain = context.socket(zmq.PULL)
        drain.bind(floor_endpoint)
        push = context.socket(zmq.PUSH)
        push.setsockopt(zmq.SNDHWM, 10_000)  # as the emitter's
        push.connect(floor_endpoint)
        push.poll(1000, zmq.POLLOUT)
        encode = msgspec.msgpack.Encoder().encode

        def empty_drain() -> None:
            while drain.poll(0):
                drain.recv()

        floor = _time_calls(lambda: push.send(encode(event), zmq.NOBLOCK), calls, empty_drain)
        context.destroy(linger=0)

    with tempfile.TemporaryDirectory() as directory:
        handler = logging.FileHandler(Path(directory) / "audit.log")
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger("bench.stdlib")
        logger.propagate = False
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        fields = msgspec.to_builtins(event)
        stdlib = _time_calls(lambda: logger.info("audit", extra={"audit": fields}), calls, handler.flush)
        handler.close()

    rows = {"auditship emit()": ours, "floor (encode + zmq send)": floor, "stdlib logging JSON file": stdlib}
    medians = {}
    print(f"{'per call, µs':<28}{'median':>10}{'p99':>10}")
    for name, samples in rows.items():
        median, p99 = percentiles(samples)
        medians[name] = median
        print(f"{name:<28}{median:>10.2f}{p99:>10.2f}")
    ours_median, floor_median = medians["auditship emit()"], medians["floor (encode + zmq send)"]
    print(f"emit / floor:   {ours_median / floor_median:.2f}x  (target <= 2x)")
    print(f"stdlib / emit:  {medians['stdlib logging JSON file'] / ours_median:.2f}x  (target >= 5x)")
    print(f"emitter counters: {stats}")
