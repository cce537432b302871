"""What the agent costs its host per event, beside rsyslog, in one run.

    python -m bench cost [--rate 5000] [--seconds 10] [--idle-seconds 10]

One paced producer process sends `rate` events/s for `seconds` (the same JSON line for both: an audit
event as the agent's file sink writes it). rsyslog takes them on imtcp and writes each message as a line
with omfile; the agent takes them from an Emitter and runs with the file sink alone, then with the
defaults (file sink, Parquet lake, detector). CPU is read from /proc for every process of the receiver
(rsyslogd's threads; the agent's supervisor and workers, each also shown alone), from the first event
until the last one is in the file (and in the lake), so the producer's own cost is not counted; idle is
the same reading over a quiet stretch before the load. Targets (issue 16): per event, the defaults <= 1.5x
rsyslog and the file sink alone <= 1.0x; idle <= 0.5% of a core.

A last row is no product but a reference: `bare`, the least a Python receiver does with these events. One
process takes the same batches (made as the emitter makes them, sent by a plain PUSH socket at the same
pace) off a PULL socket, validates each frame with the intake's typed decoder and writes it as the file
sink's JSON line, with neither WAL, acknowledgement, dedupe, rate limit, digests, fsync nor rotation.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from bench.harness import cpu_seconds, running_agent
from shipper.event import AuditEvent, AuditEventType

TARGET_DEFAULTS = 1.5
TARGET_FILE_ONLY = 1.0
TARGET_IDLE_PERCENT = 0.5
BURST_S = 0.01
"""The producer sends a burst every 10 ms: paced, as a service under steady load is."""

FILE_ONLY = "[sinks.parquet]\nenabled = false\n[detect]\nenabled = false\n"

_spawn = multiprocessing.get_context("spawn")


def _event(number: int) -> AuditEvent:
    return AuditEvent(
        event_type=AuditEventType.DATA_READ,
        user_id=f"user{number % 500}",
        source_ip="10.0.0.7",
        resource_type="patient_record",
        resource_id=str(number),
        service_name=f"svc{number % 5}",
        environment="production",
        request_id=f"req-{number}",
        details={"n": number, "fields": ["diagnosis"]},
    )


def _paced(
    rate: int, seconds: float, send: Callable[[int], None], burst_sent: Callable[[], object] = lambda: None
) -> None:
    """Call send(number) for rate * seconds numbers, in bursts every BURST_S, keeping to the rate, and
    burst_sent() after each burst."""
    total, per_burst = int(rate * seconds), max(1, int(rate * BURST_S))
    started, number = time.monotonic(), 0
    while number < total:
        for _ in range(min(per_burst, total - number)):
            send(number)
            number += 1
        burst_sent()
        delay = started + number / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def syslog_line(event: AuditEvent, host: bytes) -> bytes:
    """The event as rsyslog's input: an RFC 5424 line whose message is the event's JSON (what the
    agent's file sink writes), newline-framed as imtcp takes it."""
    stamp = datetime.now(UTC).isoformat(timespec="microseconds").encode()
    return b"<110>1 %s %s audit - - - %s\n" % (stamp, host, msgspec.json.encode(event))


def _produce_syslog(port: int, rate: int, seconds: float) -> None:
    host = socket.gethostname().encode()
    with socket.create_connection(("127.0.0.1", port)) as connection:
        buffered = connection.makefile("wb", buffering=1 << 16)

        def send(number: int) -> None:
            buffered.write(syslog_line(_event(number), host))

        # Flushed at each burst's end: rsyslog sees the load paced, not in one lump at the close.
        _paced(rate, seconds, send, buffered.flush)


def _produce_agent(env: dict[str, str], rate: int, seconds: float) -> None:
    os.environ.update(env)
    from shipper.emitter import Emitter

    emitter = Emitter()
    _paced(rate, seconds, lambda number: emitter.emit(_event(number)))
    emitter.close(timeout=60)


def _measure(pids: list[int], done: Callable[[], bool], producer: Any, what: str) -> list[float]:
    """CPU seconds each of the pids uses from the producer's start until done() (bounded: 10 minutes)."""
    before = [cpu_seconds([pid]) for pid in pids]
    producer.start()
    deadline = time.monotonic() + 600
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not all events arrived within 10 minutes")
        time.sleep(0.1)
    producer.join(60)
    return [cpu_seconds([pid]) - used for pid, used in zip(pids, before, strict=True)]


def _idle_percent(pids: list[int], seconds: float) -> float:
    before = cpu_seconds(pids)
    time.sleep(seconds)
    return (cpu_seconds(pids) - before) / seconds * 100


def _rsyslog(rate: int, seconds: float, idle_s: float) -> tuple[float, float]:
    from tests import rsyslog

    if not rsyslog.available():
        raise RuntimeError("rsyslogd is not installed (apt-get install rsyslog): no baseline")
    server = rsyslog.Rsyslog(raw_lines=True).start()
    try:
        assert server._process is not None
        pids = [server._process.pid]
        idle = _idle_percent(pids, idle_s)
        total = int(rate * seconds)

        def done() -> bool:
            return server.output.exists() and server.output.read_bytes().count(b"\n") >= total

        producer = _spawn.Process(target=_produce_syslog, args=(server.port, rate, seconds))
        used = sum(_measure(pids, done, producer, "rsyslog"))
    finally:
        server.cleanup()
    return used / total * 1e6, idle


def _agent(
    rate: int, seconds: float, idle_s: float, config_toml: str
) -> tuple[float, float, dict[str, float]]:
    """CPU µs per event of the whole agent, its idle share of a core, and µs per event of each process."""
    from shipper.control import request_status

    total = int(rate * seconds)
    with running_agent(config_toml) as (config, agent):
        status = request_status(config.runtime_path)
        if agent.process is None or status is None:
            raise RuntimeError("the agent does not answer")
        workers = {worker.name: worker.pid for worker in status.workers if worker.pid}
        pids = [agent.process.pid, *workers.values()]
        names = ["supervisor", *workers]
        idle = _idle_percent(pids, idle_s)

        def done() -> bool:
            current = request_status(config.runtime_path)
            if current is None:
                return False
            counters = {worker.name: worker.counters for worker in current.workers}
            sinks = [c for name, c in counters.items() if name.startswith("sink:")]
            return all(int(c.get("committed", 0)) >= total for c in sinks)

        env = {key: os.environ[key] for key in ("AUDITSHIP_RUNTIME_DIR", "AUDITSHIP_DATA_DIR")}
        producer = _spawn.Process(target=_produce_agent, args=(env, rate, seconds))
        used = _measure(pids, done, producer, "agent")
    per_process = {name: seconds_used / total * 1e6 for name, seconds_used in zip(names, used, strict=True)}
    return sum(used) / total * 1e6, idle, per_process


def _produce_bare(endpoint: str, rate: int, seconds: float) -> None:
    import zmq

    from shipper.wire import Frame, encode_batch, frame_encoder

    frames: list[bytes] = []
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.connect(endpoint)

    def send_burst() -> None:
        push.send(encode_batch(frames))
        frames.clear()

    _paced(
        rate,
        seconds,
        lambda n: frames.append(frame_encoder.encode(Frame("bare", n, n, _event(n)))),
        send_burst,
    )
    push.close(linger=60_000)


def _receive_bare(endpoint: str, path: str, ready: Any) -> None:
    """The `bare` receiver, until terminated: each frame of each batch validated and written as a line."""
    import zmq

    from auditship.ondisk.lines import encode_json
    from shipper.wire import frame_decoder, message_frames

    pull = zmq.Context.instance().socket(zmq.PULL)
    pull.bind(endpoint)
    ready.set()
    seq = 0
    with open(path, "ab") as output:  # noqa: PTH123 - the receiver's one file
        while True:
            lines = []
            for raw in message_frames(pull.recv()):
                seq += 1
                lines.append(encode_json(seq, frame_decoder.decode(raw).event))
            output.write(b"".join(lines))
            output.flush()


def _bare(rate: int, seconds: float, idle_s: float) -> tuple[float, float]:
    total = int(rate * seconds)
    with tempfile.TemporaryDirectory(prefix="as-bare-") as directory:
        endpoint, output = f"ipc://{directory}/bare.sock", Path(directory) / "bare.jsonl"
        ready = _spawn.Event()
        receiver = _spawn.Process(target=_receive_bare, args=(endpoint, str(output), ready))
        receiver.start()
        try:
            if not ready.wait(60) or receiver.pid is None:
                raise RuntimeError("the bare receiver did not start")
            idle = _idle_percent([receiver.pid], idle_s)

            def done() -> bool:
                return output.exists() and output.read_bytes().count(b"\n") >= total

            producer = _spawn.Process(target=_produce_bare, args=(endpoint, rate, seconds))
            used = _measure([receiver.pid], done, producer, "bare")
        finally:
            receiver.terminate()
            receiver.join(60)
    return sum(used) / total * 1e6, idle


def run(rate: int, seconds: float, idle_s: float) -> None:
    print(f"{rate:,} events/s for {seconds:.0f} s from one producer; idle over {idle_s:.0f} s before it")
    base, base_idle = _rsyslog(rate, seconds, idle_s)
    rows: list[tuple[str, float, float, float | None, dict[str, float]]] = [
        ("rsyslog (imtcp -> omfile, same JSON lines)", base, base_idle, None, {})
    ]
    file_only, file_idle, file_processes = _agent(rate, seconds, idle_s, FILE_ONLY)
    rows.append(("auditship, file sink only", file_only, file_idle, TARGET_FILE_ONLY, file_processes))
    defaults, defaults_idle, processes = _agent(rate, seconds, idle_s, "")
    rows.append(
        ("auditship, defaults (file + lake + detector)", defaults, defaults_idle, TARGET_DEFAULTS, processes)
    )
    bare, bare_idle = _bare(rate, seconds, idle_s)
    rows.append(("bare: the least a Python receiver does", bare, bare_idle, None, {}))
    print(f"  {'':<46}{'CPU per event':>14}{'vs rsyslog':>12}{'target':>8}{'idle (% core)':>15}")
    for name, per_event, idle, target, per_process in rows:
        ratio = per_event / base
        goal = f"<= {target:.1f}x" if target is not None else ""
        print(f"  {name:<46}{per_event:>11.1f} µs{ratio:>11.2f}x{goal:>8}{idle:>14.2f}%")
        for process, share in per_process.items():
            print(f"    {process:<44}{share:>11.1f} µs")
