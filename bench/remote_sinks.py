"""The network sinks' part of `python -m bench sinks`:

    hec      the SIEM sink's own cost into a local HEC receiver (tests/siem_server.py, its own process):
             its `write_batch` driven in this process in the runner's batches, with the CPU time this
             process and the receiver spent per event (steadier than the wall rate on a shared machine)
             and the events/s; then events/s from the WAL through a real agent
    bulk     the same sink-level measurement into the receiver's Elasticsearch `_bulk`
    syslog   events/s from the WAL into a real rsyslog on a loopback port (tests/rsyslog.py)
    outage   the SIEM down for `outage_s` while events arrive at `rate`: the backlog, and how fast
             it drains once the SIEM is back (target: at least 3x the intake rate)

Through an agent, the WAL is filled first while the destination is down, so that the clock
measures the sink alone: from the first event the destination received to the last (the receiver's
and rsyslog's own arrival times), not the intake, nor the runner's backoff while it was down.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, Literal

import httpx

from auditship.agents.config import AgentConfig
from auditship.agents.sinks.base import Delivery
from auditship.agents.sinks.siem.config import SiemSinkConfig
from auditship.agents.sinks.siem.sink import REQUESTS_PER_COMMIT, SiemSink, destination
from bench.harness import running_agent
from shipper.control import request_status
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType
from tests import rsyslog
from tests.services import tcp_reachable
from tests.siem_server import API_KEY, TOKEN, serve

TARGET_HEC_RATE = 100_000
"""events/s, for HEC and `_bulk` alike, with the default batch settings"""
TARGET_DRAIN_FACTOR = 3.0
_BASE = """
[wal]
fsync = "never"
[supervisor]
stats_interval_s = 0.1
"""
_spawn = multiprocessing.get_context("spawn")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _event(number: int) -> AuditEvent:
    return AuditEvent(
        event_type=AuditEventType.DATA_READ,
        user_id=f"user{number % 100}",
        resource_type="patient_record",
        resource_id=str(number),
        service_name="bench",
        details={"n": number},
    )


def _counters(config: AgentConfig) -> dict[str, dict[str, int | float]]:
    status = request_status(config.runtime_path)
    return {w.name: w.counters for w in status.workers} if status is not None else {}


def _wait(config: AgentConfig, done: Any, what: str, timeout_s: float = 600.0) -> dict[str, Any]:
    """Poll the agent's counters until `done(counters)`; the counters then."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counters = _counters(config)
        if counters and done(counters):
            return counters
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def _fill(config: AgentConfig, events: int) -> None:
    """Emit `events` into the agent and wait until the WAL has them all."""
    emitter = Emitter()
    for number in range(events):
        emitter.emit(_event(number))
    emitter.close(timeout=60)
    _wait(config, lambda c: c["intake"].get("last_seq", 0) >= events, "the WAL to hold every event")


class _Receiver:
    """The counting HEC receiver of tests/siem_server.py in its own process, on `port`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._process = _spawn.Process(target=serve, args=(port,), daemon=True)

    def start(self) -> None:
        self._process.start()
        deadline = time.monotonic() + 30
        while not tcp_reachable("127.0.0.1", self.port, timeout=0.2):
            if time.monotonic() > deadline or not self._process.is_alive():
                raise RuntimeError("the HEC receiver did not start")
            time.sleep(0.05)

    def cpu_s(self) -> float:
        """The CPU time the receiver's process has used so far."""
        fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def stats(self) -> dict[str, float]:
        stats: dict[str, float] = httpx.get(f"http://127.0.0.1:{self.port}/stats", timeout=10).json()
        return stats

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(10)


@contextmanager
def _hec_agent(config_toml: str, receiver: _Receiver) -> Iterator[AgentConfig]:
    """An agent shipping to `receiver`, which is stopped only after the agent has drained into it."""
    try:
        with running_agent(config_toml) as (config, _):
            yield config
    finally:
        receiver.stop()


def _hec_config(port: int, batch_size: int, flush_interval_s: float, file_sink: bool) -> str:
    return _BASE + (
        f"[sinks.file]\nenabled = {str(file_sink).lower()}\nfsync = false\n"
        '[sinks.siem]\nenabled = true\nformat = "splunk_hec"\n'
        f'endpoint = "http://127.0.0.1:{port}"\napi_key = "{TOKEN}"\n'
        f"batch_size = {batch_size}\nflush_interval_s = {flush_interval_s}\n"
    )


def sink_alone(kind: Literal["splunk_hec", "elasticsearch"], events: int, batch_sizes: list[int]) -> None:
    """The SIEM sink in this process, `kind` (splunk_hec or elasticsearch) into the receiver, in
    batches as the runner hands them over (REQUESTS_PER_COMMIT requests' worth)."""
    from bench.sinks import sample_entries

    wal_id = "0" * 32
    with tempfile.TemporaryDirectory() as keys:
        entries = sample_entries(events, Path(keys) / "keys")
    for batch_size in batch_sizes:
        receiver = _Receiver(_free_port())
        receiver.start()
        key = TOKEN if kind == "splunk_hec" else API_KEY
        url = f"http://127.0.0.1:{receiver.port}"
        config = SiemSinkConfig(
            enabled=True, destination_kind=kind, endpoint=url, api_key=key, batch_size=batch_size
        )
        sink = SiemSink(config, destination(config, wal_id), wal_id)
        sink.open()
        per_batch = batch_size * REQUESTS_PER_COMMIT
        try:
            assert sink.write_batch(entries[:per_batch]) is Delivery.DELIVERED  # connects; not timed
            timed = entries[per_batch:]
            receiver_cpu, cpu, started = receiver.cpu_s(), time.process_time(), time.perf_counter()
            for start in range(0, len(timed), per_batch):
                outcome = sink.write_batch(timed[start : start + per_batch])
                assert outcome is Delivery.DELIVERED, outcome
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            receiver_cpu = receiver.cpu_s() - receiver_cpu
            received = receiver.stats()["received"]
        finally:
            sink.close()
            receiver.stop()
        default = " (the default)" if batch_size == SiemSinkConfig().batch_size else ""
        print(
            f"{kind} sink alone, batch_size {batch_size}{default}: {len(timed) / elapsed:,.0f} events/s "
            f"(target {TARGET_HEC_RATE:,}); sink CPU {cpu * 1e6 / len(timed):.1f} us/event, receiver "
            f"{receiver_cpu * 1e6 / len(timed):.1f}; received all: {received == len(entries)}"
        )


def hec(events: int, batch_sizes: list[int]) -> None:
    for batch_size in batch_sizes:
        receiver = _Receiver(_free_port())
        with _hec_agent(_hec_config(receiver.port, batch_size, 0.05, file_sink=False), receiver) as config:
            _fill(config, events)
            receiver.start()
            _wait(config, lambda c: c["sink:siem"].get("committed", 0) >= events, "the SIEM sink")
            stats = receiver.stats()
        seconds = stats["last_at"] - stats["first_at"]
        rate = stats["received"] / seconds
        print(
            f"hec, batch_size {batch_size}: {int(stats['received']):,} events in {seconds:.2f}s: "
            f"{rate:,.0f} events/s (target {TARGET_HEC_RATE:,}); received all: {stats['received'] == events}"
        )


def syslog(events: int) -> None:
    if not rsyslog.available():
        print("syslog: skipped, rsyslogd is not installed (apt-get install rsyslog)")
        return
    server = rsyslog.Rsyslog()
    server.port = _free_port()
    toml = _BASE + (
        "[sinks.file]\nenabled = false\n"
        f"[sinks.syslog]\nenabled = true\nport = {server.port}\ntls = false\n"
        "batch_size = 500\nflush_interval_s = 0.05\n"
    )
    try:
        with running_agent(toml) as (config, _):
            _fill(config, events)
            server.start()
            _wait(config, lambda c: c["sink:syslog"].get("committed", 0) >= events, "the syslog sink")
            messages = server.messages()
        first, last = (datetime.fromisoformat(m["received"]) for m in (messages[0], messages[-1]))
        seconds = (last - first).total_seconds()
        print(
            f"syslog (rsyslog, JSON, batch_size 500): {len(messages):,} events in {seconds:.2f}s: "
            f"{len(messages) / seconds:,.0f} events/s; received all: {len(messages) == events}"
        )
    finally:
        server.cleanup()


def _produce(env: dict[str, str], rate: int, stop: Event) -> None:
    """Emit `rate` events a second, on a fixed schedule, until `stop` is set."""
    os.environ.update(env)
    emitter = Emitter()
    per_tick, tick_s = max(1, rate // 100), 0.01
    started, number = time.monotonic(), 0
    while not stop.is_set():
        for _ in range(per_tick):
            emitter.emit(_event(number))
            number += 1
        pause = started + (number / per_tick) * tick_s - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    emitter.close(timeout=60)


def outage(outage_s: float, rate: int) -> None:
    receiver = _Receiver(_free_port())
    with _hec_agent(_hec_config(receiver.port, 50, 1.0, file_sink=True), receiver) as config:
        env = {key: os.environ[key] for key in ("AUDITSHIP_RUNTIME_DIR", "AUDITSHIP_DATA_DIR")}
        stop = _spawn.Event()
        producer = _spawn.Process(target=_produce, args=(env, rate, stop))
        started = time.time()
        producer.start()
        try:
            time.sleep(outage_s)  # the outage itself: nothing listens on the SIEM's port
            counters = _counters(config)
            backlog = int(counters["intake"]["last_seq"]) - int(counters["sink:siem"]["committed"])
            intake_rate = int(counters["intake"]["last_seq"]) / (time.time() - started)
            back = time.time()
            receiver.start()
            # Caught up: behind by less than the second's worth of events a partial batch may wait for
            # (flush_interval_s = 1.0), the lag the sink has when nothing was ever down.
            counters = _wait(
                config,
                lambda c: c["intake"].get("last_seq", 0) - c["sink:siem"].get("committed", 0) < rate,
                "the SIEM sink to catch up",
            )
            caught_up = time.time()
            stats = receiver.stats()
        finally:
            stop.set()
            producer.join(120)
    drain_s = caught_up - stats["first_at"]
    drained = int(counters["sink:siem"]["committed"])
    drain_rate = drained / drain_s
    print(
        f"outage: SIEM down {outage_s:.0f}s while events arrived at {intake_rate:,.0f}/s; "
        f"backlog {backlog:,} events"
    )
    print(
        f"outage: the sink tried again {stats['first_at'] - back:.1f}s after the SIEM was back "
        f"(its retry backoff), then drained {drained:,} events in {drain_s:.1f}s: {drain_rate:,.0f} events/s "
        f"= {drain_rate / intake_rate:.1f}x the intake rate (target {TARGET_DRAIN_FACTOR:.0f}x)"
    )
