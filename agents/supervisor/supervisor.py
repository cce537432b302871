"""The supervisor: the agent's main process. It starts the workers (spawn), restarts a crashed one with
backoff, gives up loudly on one that flaps, answers `audit-agent status`, and on SIGTERM drains: the
intake stops, the sinks deliver what the WAL holds, then everything exits, within a timeout.

It sleeps on its control socket and on a signal wake-up pipe: a worker's death (SIGCHLD) or a stop
signal wakes it at once, so with every worker running it needs no fast tick; it looks every
SETTLED_TICK_MS anyway, and every TICK_MS while a worker starts or waits out its restart backoff."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType

import zmq

from auditship.agents import messages, retention
from auditship.agents.config import AgentConfig
from auditship.agents.integrity.signing import rotate_if_older
from auditship.agents.messages import Hello, Stats, Stop
from auditship.agents.supervisor import orphans, runtime, systemd
from auditship.agents.supervisor.process import State, WorkerProcess
from auditship.agents.supervisor.spec import WorkerSpec
from auditship.agents.supervisor.wake_up import WakeUpPipe
from auditship.ondisk.data_layout import DataLayout
from auditship.ondisk.errors import AuditshipError
from shipper import endpoint as endpoints
from shipper.control import Message, Status, StatusRequest, WorkerStatus

log = logging.getLogger("auditship.supervisor")
TICK_MS = 100
SETTLED_TICK_MS = 1000
KEY_CHECK_S = 3600.0
"""How often the supervisor looks whether the signing key is due for rotation by age."""
_SETTLED = frozenset((State.RUNNING, State.FATAL, State.EXITED))
REAP_TIMEOUT_S = 10.0
STOP_GRACE_S = 5.0
"""After the drain's deadline: how long a worker told to stop at once gets before it is killed."""


class Supervisor:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.layout = DataLayout(config.data_path)
        specs = [WorkerSpec("intake", "intake")] + [
            WorkerSpec(f"sink:{name}", "sink", name) for name in config.enabled_sinks()
        ]
        if config.detect.enabled:
            specs.append(WorkerSpec("detect", "detect"))
        self.workers = {spec.name: WorkerProcess(spec, config.supervisor.restart) for spec in specs}
        self._stop_signal: int | None = None
        self.exit_code = 0

    def run(self) -> int:
        self._locks = runtime.prepare(
            self.layout, self.config.runtime_path, self.config.spool_path, self.config.keys_path
        )
        # Holding the agent's lock: no other supervisor starts workers here meanwhile.
        orphans.reap(self.layout.workers, REAP_TIMEOUT_S)
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.control = self.context.socket(zmq.ROUTER)
        self.control.setsockopt(zmq.LINGER, 0)
        # A worker's newest connection is the one that counts: without this, a name still connected
        # (a restarted worker's predecessor not yet torn down) would leave the new one unheard.
        self.control.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.control.bind(endpoints.control_endpoint(self.config.runtime_path))
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self._wake_up = WakeUpPipe()
        # A handler, even one that does nothing, is what makes a worker's exit write to the pipe.
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        self._poller = zmq.Poller()
        self._poller.register(self.control, zmq.POLLIN)
        self._poller.register(self._wake_up.fd, zmq.POLLIN)
        log.info(
            "audit-agent %d: data in %s, intake on %s, sinks: %s, detection %s",
            os.getpid(),
            self.layout.root,
            self.config.intake_endpoint,
            ", ".join(self.config.enabled_sinks()) or "none",
            "on" if self.config.detect.enabled else "off",
        )
        spool_warning = self.config.spool_warning()
        if spool_warning is not None:
            log.warning("%s", spool_warning)
        for worker in self.workers.values():
            worker.start(self.config)
        stop_retention = threading.Event()
        if self.config.retention.auto_cleanup:
            # A thread of its own: a day's deletions must not hold up watching the workers. A daemon, so
            # a deletion under way never delays the exit (retention finishes it the next time).
            threading.Thread(
                target=retention.run_daily, args=(self.config, stop_retention), name="retention", daemon=True
            ).start()
        systemd.notify("READY=1")
        self._supervise()
        stop_retention.set()
        self._drain()
        self._wake_up.close()
        self.control.close()
        self.context.term()
        runtime.clean(self.config.runtime_path)
        return self.exit_code

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_signal = signum

    def _supervise(self) -> None:
        watchdog = systemd.watchdog_interval()
        next_watchdog = next_key_check = 0.0
        while self._stop_signal is None:
            settled = all(worker.state in _SETTLED for worker in self.workers.values())
            timeout_ms = SETTLED_TICK_MS if settled else TICK_MS
            if watchdog is not None:
                timeout_ms = min(timeout_ms, max(0, int((next_watchdog - time.monotonic()) * 1000)))
            self._handle_messages(timeout_ms)
            now = time.monotonic()
            for worker in self.workers.values():
                if worker.state in (State.STARTING, State.RUNNING) and not worker.alive:
                    worker.exited(now)
                    if worker.fatal and worker.spec.role == "intake":
                        log.critical("without an intake the agent accepts nothing: stopping with exit code 1")
                        self.exit_code = 1
                        return
                worker.maybe_restart(self.config, now)
            if now >= next_key_check:
                next_key_check = now + KEY_CHECK_S
                self._rotate_signing_key_if_due()
            if watchdog is not None and now >= next_watchdog:
                next_watchdog = now + watchdog
                systemd.notify("WATCHDOG=1")
        log.info("signal %d: draining", self._stop_signal)

    def _rotate_signing_key_if_due(self) -> None:
        max_age_s = self.config.keys.signing_rotate_after_days * 86400.0
        try:
            rotated = rotate_if_older(self.config.keys_path, max_age_s, time.time())
        except (OSError, AuditshipError) as exc:  # the old key signs on; tried again in an hour
            log.error("could not rotate the digests' signing key in %s: %s", self.config.keys_path, exc)
            return
        if rotated is not None:
            log.warning(
                "signing key %s was over keys.signing_rotate_after_days (%d) old: %s signs the digests now; "
                "give auditors the new public key (audit-agent keys export-public)",
                rotated[0],
                self.config.keys.signing_rotate_after_days,
                rotated[1],
            )

    def _handle_messages(self, timeout_ms: int) -> None:
        ready = dict(self._poller.poll(timeout_ms))
        if self._wake_up.fd in ready:
            self._wake_up.drain()
        if self.control not in ready:
            return
        while True:
            try:
                identity, payload = self.control.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:
                continue  # not [identity, payload]: nobody we know
            try:
                message = messages.decoder.decode(payload)
            except Exception as exc:  # noqa: BLE001 - a bad control message must not stop the supervisor
                self._reply(identity, messages.Failed(f"undecodable control message: {exc}"))
                continue
            self._dispatch(identity, message)

    def _dispatch(self, identity: bytes, message: Message) -> None:
        worker = self.workers.get(identity.decode(errors="replace"))
        match message:
            case Hello() if worker is not None:
                worker.transition(State.RUNNING)
            case Stats() if worker is not None:
                worker.counters = message.counters
                worker.problem = message.problem
            case StatusRequest():
                self._reply(identity, self.status())
            case _:
                self._reply(identity, messages.Failed(f"unexpected message {type(message).__name__}"))

    def _reply(self, identity: bytes, message: Message) -> None:
        try:
            self.control.send_multipart([identity, messages.encoder.encode(message)], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            log.debug("reply to %r lost: %s", identity, exc)

    def status(self) -> Status:
        return Status(
            os.getpid(),
            [
                WorkerStatus(name, w.state.value, w.pid, w.restarts, w.counters, w.problem)
                for name, w in self.workers.items()
            ],
        )

    def _drain(self) -> None:
        """Intake first (nothing new comes in), then the sinks (and the detector) catch up with the WAL, then
        exit. A sink that cannot catch up in time (its destination down) is told to stop at the deadline:
        what it has not delivered stays in the WAL for the next start, and the exit code is still 0."""
        systemd.notify("STOPPING=1")
        deadline = time.monotonic() + self.config.supervisor.drain_timeout_s
        intake = [w for w in self.workers.values() if w.spec.role == "intake"]
        sinks = [w for w in self.workers.values() if w.spec.role != "intake"]
        self._stop(intake, Stop(drain=False), deadline)
        self._kill(intake)
        self._stop(sinks, Stop(drain=True), deadline)
        late = [w for w in sinks if w.alive]
        for worker in late:
            log.warning(
                "worker %s has not drained within supervisor.drain_timeout_s (%.0fs): stopping it; what it "
                "has not delivered stays in the WAL and goes out after the next start",
                worker.spec.name,
                self.config.supervisor.drain_timeout_s,
            )
        self._stop(late, Stop(drain=False), time.monotonic() + STOP_GRACE_S)
        self._kill(sinks)
        log.info("stopped: %s", ", ".join(self.workers))

    def _stop(self, workers: list[WorkerProcess], message: Stop, deadline: float) -> None:
        """Send `message` to `workers` until they have exited or `deadline` has passed."""
        for worker in workers:
            worker.transition(State.STOPPING if worker.alive else State.EXITED)
        while any(w.alive for w in workers) and time.monotonic() < deadline:
            # Sent again each tick: a worker still starting has not connected yet and would miss it.
            for worker in workers:
                if worker.alive:
                    self._reply(worker.spec.name.encode(), message)
            self._handle_messages(TICK_MS * 5)

    def _kill(self, workers: list[WorkerProcess]) -> None:
        """Kill those that are still alive (nothing is lost: their cursors have not moved) and exit 1."""
        for worker in workers:
            if worker.alive:
                self.exit_code = 1
            worker.kill()
