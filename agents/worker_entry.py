"""The entry point of every worker process (the spawn target): death with the supervisor, signals, process
title, logging, the worker's lock, mailbox, then the role."""

from __future__ import annotations

import logging
import signal
import sys

import zmq
from setproctitle import setproctitle

from auditship.agents.config import AgentConfig
from auditship.agents.logs import configure_logging
from auditship.agents.mailbox import Mailbox
from auditship.agents.supervisor import orphans
from auditship.agents.supervisor.spec import WorkerSpec
from auditship.ondisk.data_layout import DataLayout
from shipper import endpoint as endpoints

log = logging.getLogger("auditship.worker")


def worker_main(spec: WorkerSpec, config: AgentConfig, supervisor: int) -> None:
    """Run the worker `spec` for the supervisor whose pid is `supervisor`."""
    orphans.die_with_parent(supervisor)
    # The supervisor orchestrates shutdown (a Stop message, then SIGKILL); a terminal's Ctrl-C or a
    # SIGTERM sent to the whole process group must not cut a worker short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    setproctitle(f"audit-agent: {spec.name.replace(':', ' ')}")
    configure_logging(config.log_level, spec.name)
    try:
        orphans.claim(DataLayout(config.data_path).workers, spec.name)  # held until the process ends
    except (orphans.LeftoverWorker, OSError) as exc:
        log.error("worker %s cannot start: %s; the supervisor restarts it", spec.name, exc)
        sys.exit(1)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    mailbox = Mailbox(context, endpoints.control_endpoint(config.runtime_path), spec.name, supervisor)
    try:
        if spec.role == "intake":
            from auditship.agents.intake.intake import Intake

            Intake(config, context, mailbox).run()
        elif spec.role == "detect":
            from auditship.agents.detect.worker import DetectWorker

            DetectWorker(config, mailbox).run()
        else:
            from auditship.agents.sinks.runner import build_runner

            build_runner(spec.sink, config, mailbox).run()
    except Exception:
        log.exception("worker %s failed; the supervisor restarts it", spec.name)
        mailbox.close()
        context.destroy(linger=0)
        sys.exit(1)
    mailbox.close()
    context.term()
