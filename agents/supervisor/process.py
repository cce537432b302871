"""One supervised worker: its process and its state, which changes in one method."""

from __future__ import annotations

import enum
import logging
import multiprocessing
import multiprocessing.process
import os

from auditship.agents.backoff import compute_backoff
from auditship.agents.config import AgentConfig, RestartConfig
from auditship.agents.supervisor.flapping import FlapDetector
from auditship.agents.supervisor.spec import WorkerSpec

log = logging.getLogger("auditship.supervisor")


class State(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    EXITED = "exited"
    FATAL = "fatal"


class WorkerProcess:
    def __init__(self, spec: WorkerSpec, restart: RestartConfig) -> None:
        self.spec = spec
        self.restart = restart
        self.state = State.EXITED
        self.process: multiprocessing.process.BaseProcess | None = None
        self.restarts = 0
        self.restart_at = 0.0
        self.counters: dict[str, int | float] = {}
        self.problem: str | None = None
        self.flapping = FlapDetector(restart.flap_restarts, restart.flap_window_s)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def fatal(self) -> bool:
        return self.state is State.FATAL

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def transition(self, state: State) -> None:
        if state is not self.state:
            log.debug("worker %s: %s -> %s", self.spec.name, self.state.value, state.value)
            self.state = state

    def start(self, config: AgentConfig) -> None:
        # The spawn target; imported here to keep the supervisor light.
        from auditship.agents.worker_entry import worker_main

        context = multiprocessing.get_context("spawn")
        self.process = context.Process(
            target=worker_main, args=(self.spec, config, os.getpid()), name=self.spec.name
        )
        self.process.start()
        self.transition(State.STARTING)
        log.info("worker %s started (pid %s)", self.spec.name, self.process.pid)

    def exited(self, now: float) -> None:
        """The process ended while it should have run: back off, or give up when it flaps."""
        assert self.process is not None
        code = self.process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        self.process.close()
        self.process = None
        if self.flapping.record_exit(now):
            self.transition(State.FATAL)
            log.critical(
                "worker %s %s; it exited %d times within %.0fs, giving up on it",
                self.spec.name,
                how,
                self.flapping.recent_exits,
                self.restart.flap_window_s,
            )
            return
        delay = compute_backoff(
            self.flapping.recent_exits,
            self.restart.backoff_initial_s,
            self.restart.backoff_max_s,
            jitter=False,
        )
        self.restart_at = now + delay
        self.transition(State.BACKOFF)
        log.error("worker %s %s; restarting it in %.1fs", self.spec.name, how, delay)

    def maybe_restart(self, config: AgentConfig, now: float) -> None:
        if self.state is State.BACKOFF and now >= self.restart_at:
            self.restarts += 1
            self.start(config)

    def kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            log.warning("worker %s did not stop in time; killing it", self.spec.name)
            self.process.kill()
            self.process.join(5)
        self.transition(State.EXITED)
