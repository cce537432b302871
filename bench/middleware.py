"""Requests/s of a minimal endpoint with and without the audit middleware, in one run.

- HTTP: a Starlette app with one route (`GET /users/{user_id}`, a small JSON body) under uvicorn
  (h11, asyncio; access log off), plain and with AuditMiddleware (bench.apps, its `empty` app).
- gRPC: one unary method (bytes in, bytes out) on `grpc.server` with 8 threads, and on
  `grpc.aio.server`, plain and with the audit interceptor.

Each server runs in a process of its own. Audited, it sends every event to a real agent started for
the run, as a service would; a third variant discards the events instead (an emit that does nothing),
which isolates the middleware's own cost from the agent's: on a small machine the agent's work on the
events competes with the server for the same cores.

Besides requests/s, the CPU time the server process used per request is reported (all its threads,
from /proc). On a machine shared with other work, requests/s swings with whatever else runs, while the
CPU a request takes stays put; for a server that is CPU-bound, as these are, the throughput cost of the
middleware is 1 - plain CPU / audited CPU. The agent's CPU per audited request is reported too.

The load comes from another process: `wrk` (one thread, keep-alive connections) when it is installed,
else this process's asyncio client writing one request and reading one response at a time per
connection; for gRPC, a `grpc.aio` channel with that many calls in flight. The variants take turns,
`rounds` times each after a warm-up, and the median of each is reported, so that drift of the machine
(other processes, CPU frequency) falls on all of them alike.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from bench.apps import BODY, http_server
from bench.harness import cpu_seconds, running_agent

GRPC_METHOD = "/bench.Users/Get"
VARIANTS = ("plain", "audited", "discarding")
_CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)
_WAIT_S = 30.0


def _audit_options(variant: str) -> dict[str, Any] | None:
    """The interceptor's arguments for a variant, None for the plain server."""
    from shipper.config import AuditContext

    if variant == "plain":
        return None
    context = AuditContext(service_name="bench")
    return {"context": context} if variant == "audited" else {"context": context, "emit": lambda event: None}


def _report(conn: Connection, recorder: Any) -> None:
    """Send the server's counters back: the recorder's, and the emitter's after a flush."""
    from shipper.emitter import _default

    counters: dict[str, Any] = {}
    if recorder is not None:
        counters["recorder"] = msgspec.structs.asdict(recorder.stats)
    if _default is not None:  # events were sent to the agent
        _default.flush(10)
        counters["emitter"] = msgspec.structs.asdict(_default.stats)
    conn.send(counters)


def _serve_http(variant: str, conn: Connection) -> None:
    server, listener, recorder = http_server(variant)
    conn.send(listener.getsockname()[1])

    def stop_when_told() -> None:
        conn.recv()
        server.should_exit = True

    threading.Thread(target=stop_when_told, daemon=True).start()
    server.run(sockets=[listener])
    _report(conn, recorder)


def _generic_handler(aio: bool) -> Any:
    import grpc

    def get(request: bytes, context: Any) -> bytes:
        return BODY

    async def get_async(request: bytes, context: Any) -> bytes:
        return BODY

    service, method = GRPC_METHOD.strip("/").split("/")
    handler = grpc.unary_unary_rpc_method_handler(get_async if aio else get)
    return grpc.method_handlers_generic_handler(service, {method: handler})


def _serve_grpc(variant: str, conn: Connection) -> None:
    from concurrent import futures

    import grpc

    from shipper.middleware.grpc_server import AuditServerInterceptor

    options = _audit_options(variant)
    interceptors = [AuditServerInterceptor(**options)] if options is not None else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=interceptors)
    server.add_generic_rpc_handlers((_generic_handler(aio=False),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    conn.send(port)
    conn.recv()
    server.stop(None)
    _report(conn, interceptors[0].recorder if interceptors else None)


def _serve_grpc_aio(variant: str, conn: Connection) -> None:
    import grpc.aio

    from shipper.middleware.grpc_server import AioAuditServerInterceptor

    options = _audit_options(variant)
    interceptors = [AioAuditServerInterceptor(**options)] if options is not None else []

    async def serve() -> None:
        server = grpc.aio.server(interceptors=interceptors)
        server.add_generic_rpc_handlers((_generic_handler(aio=True),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        conn.send(port)
        await asyncio.to_thread(conn.recv)
        await server.stop(None)

    asyncio.run(serve())
    _report(conn, interceptors[0].recorder if interceptors else None)


def _wrk_load(port: int, connections: int, seconds: float) -> int:
    url = f"http://127.0.0.1:{port}/users/42"
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", url]
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + _WAIT_S, check=True
    ).stdout
    done = re.search(r"(\d+) requests in", output)
    if done is None or "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk reported trouble:\n{output}")
    return int(done.group(1))


async def keep_alive_requests(
    port: int, *, count: int | None = None, deadline: float | None = None, path: str = "/users/42"
) -> int:
    """GET requests for `path` on one keep-alive connection, one at a time, until `count` are done or the
    monotonic clock passes `deadline`; returns how many were. Anything but a 200 with a body raises."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    while (count is None or done < count) and (deadline is None or time.monotonic() < deadline):
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = _CONTENT_LENGTH.search(head)
        if not head.startswith(b"HTTP/1.1 200") or length is None:
            raise RuntimeError(f"unexpected response: {head!r}")
        await reader.readexactly(int(length.group(1)))
        done += 1
    writer.close()
    await writer.wait_closed()
    return done


def _asyncio_http_load(port: int, connections: int, seconds: float) -> int:
    async def load() -> int:
        deadline = time.monotonic() + seconds
        return sum(
            await asyncio.gather(*(keep_alive_requests(port, deadline=deadline) for _ in range(connections)))
        )

    return asyncio.run(load())


def _grpc_load(port: int, connections: int, seconds: float) -> int:
    import grpc.aio

    async def load() -> int:
        deadline = time.monotonic() + seconds
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(GRPC_METHOD)

            async def caller() -> int:
                done = 0
                while time.monotonic() < deadline:
                    await call(b"42")
                    done += 1
                return done

            return sum(await asyncio.gather(*(caller() for _ in range(connections))))

    return asyncio.run(load())


Load = Callable[[int, int, float], int]  # port, connections, seconds -> requests done
Serve = Callable[[str, Connection], None]
HTTP_LOAD, HTTP_LOADER = (
    (_wrk_load, "wrk -t1")
    if shutil.which("wrk")
    else (_asyncio_http_load, "an asyncio keep-alive client (install wrk for a lighter one)")
)
SERVERS: dict[str, tuple[Serve, Load]] = {
    "http": (_serve_http, HTTP_LOAD),
    "grpc": (_serve_grpc, _grpc_load),
    "grpc-aio": (_serve_grpc_aio, _grpc_load),
}


class _Server:
    """A server process serving until `stop()`, which returns the counters it reports."""

    def __init__(self, serve: Serve, variant: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(variant, child), daemon=True)
        self.process.start()
        if not self._conn.poll(_WAIT_S):
            raise RuntimeError(f"{serve.__name__} did not start within {_WAIT_S} s")
        self.port: int = self._conn.recv()

    def stop(self) -> dict[str, Any]:
        self._conn.send("stop")
        counters: dict[str, Any] = self._conn.recv() if self._conn.poll(_WAIT_S) else {}
        self.process.join(_WAIT_S)
        return counters


class _Measured(msgspec.Struct):
    rate: float  # requests/s
    server_us: float  # server CPU per request
    agent_us: float  # agent CPU per request


def _measure(
    serve: Serve, load: Load, variant: str, args: Any, agent_pids: list[int]
) -> tuple[_Measured, dict[str, Any]]:
    server = _Server(serve, variant)
    pids = [server.process.pid or 0]  # started, so it has one
    try:
        load(server.port, args.connections, 1.0)  # warm-up: connections opened, lazy imports done
        server_cpu, agent_cpu, started = cpu_seconds(pids), cpu_seconds(agent_pids), time.monotonic()
        done = load(server.port, args.connections, args.seconds)
        elapsed = time.monotonic() - started
        server_cpu, agent_cpu = cpu_seconds(pids) - server_cpu, cpu_seconds(agent_pids) - agent_cpu
    finally:
        counters = server.stop()
    return _Measured(done / elapsed, server_cpu / done * 1e6, agent_cpu / done * 1e6), counters


def _compare(name: str, serve: Serve, load: Load, args: Any, agent_pids: list[int]) -> dict[str, float]:
    """Measure the variants in turn, print their medians; returns each variant's CPU cost in %."""
    runs: dict[str, list[_Measured]] = {variant: [] for variant in VARIANTS}
    counters: dict[str, Any] = {}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            measured, reported = _measure(serve, load, variant, args, agent_pids)
            runs[variant].append(measured)
            if variant == "audited":
                counters = reported
    rate = {variant: statistics.median(m.rate for m in values) for variant, values in runs.items()}
    cpu = {variant: statistics.median(m.server_us for m in values) for variant, values in runs.items()}
    costs = {}
    print(name)
    for variant in VARIANTS:
        rate_cost = (rate["plain"] - rate[variant]) / rate["plain"] * 100
        costs[variant] = (1 - cpu["plain"] / cpu[variant]) * 100
        rounds = ", ".join(f"{m.rate:,.0f}/{m.server_us:.0f}" for m in runs[variant])
        measured = f"{rate[variant]:>9,.0f}{rate_cost:>8.1f}%{cpu[variant]:>12.1f}{costs[variant]:>8.1f}%"
        print(f"  {variant:<12}{measured}   rounds (req/s / µs): {rounds}")
    agent_us = statistics.median(m.agent_us for m in runs["audited"])
    print(f"  agent CPU per audited request: {agent_us:.1f} µs; last audited server: {counters}")
    return costs


def run(args: Any) -> None:
    from shipper.control import request_status

    print(f"HTTP load: {HTTP_LOADER}; gRPC load: grpc.aio client")
    print(f"{args.rounds} rounds of {args.seconds:g} s; {args.connections} connections (or calls in flight)")
    with running_agent('[wal]\nfsync = "never"\n') as (config, agent):
        status = request_status(config.runtime_path)
        if agent.process is None or status is None:
            raise RuntimeError("the agent does not answer")
        agent_pids = [agent.process.pid, *(worker.pid for worker in status.workers if worker.pid)]
        print(f"{'':<14}{'req/s':>9}{'cost':>9}{'CPU µs/req':>12}{'cost':>8}  (costs against plain)")
        costs = {
            name: _compare(name, serve, load, args, agent_pids)
            for name, (serve, load) in SERVERS.items()
            if name in args.only
        }
    for variant in VARIANTS[1:]:
        worst = max(costs, key=lambda name: costs[name][variant])
        print(f"highest CPU cost, {variant}: {worst} {costs[worst][variant]:.1f}% (target <= 5%)")
