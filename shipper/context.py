"""`audit_context(config, context)`: the seed's way to get an AuditLogger for the life of a block.

It decides once where events go, and never keeps a service from starting because of auditing:
- On a host with an agent installed (shipper.endpoint.agent_installed), or with an endpoint named
  (`AuditConfig.endpoint`, `AUDITSHIP_ENDPOINT`), events go to that agent; while it is not answering
  they wait in the spool, which it ingests when it is up. That agent's own config decides the sinks:
  an AuditConfig that asks for sinks of its own is told so once, in the `auditship` logger.
- Elsewhere (a laptop, a test) an agent that answers on this user's socket is used; with none, an
  embedded agent is started (shipper.embedded), configured from the AuditConfig, and drained when the
  block ends. If it cannot start (the plain install has no agent), a warning says so and events wait
  in the spool for an agent to take them.
`AuditConfig.embedded` = "on" or "off" forces the choice; with "on", an embedded agent that cannot
start is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import fields

from shipper import endpoint
from shipper.config import AuditConfig, AuditContext
from shipper.embedded import EmbeddedAgent, agent_answers
from shipper.emitter import Emitter, get_emitter
from shipper.logger import AuditLogger

log = logging.getLogger("auditship")
FLUSH_TIMEOUT_S = 10.0
MAX_LINGER_S = 1.0
EMBEDDED_MODES = ("auto", "on", "off")
# The settings that configure an agent's sinks and retention, not the service's own logging.
_AGENT_SETTINGS = (
    "enable_file_logging",
    "enable_database_logging",
    "enable_console_logging",
    "enable_siem_logging",
    "log_file_path",
    "max_file_size",
    "max_files",
    "encrypt_sensitive_data",
    "batch_size",
    "retention_days",
    "auto_cleanup",
    "data_dir",
    "destinations",
)
_told: set[str] = set()


@contextlib.asynccontextmanager
async def audit_context(config: AuditConfig, context: AuditContext) -> AsyncIterator[AuditLogger]:
    """Yield an AuditLogger sending to this host's agent, or to an embedded one (see the module).

    On exit, waits (up to 10 s) for the agent to confirm every event, then drains and stops the embedded
    agent if it started one. What is still unconfirmed by then goes to the spool, not away.
    """
    if config.embedded not in EMBEDDED_MODES:
        raise ValueError(f"AuditConfig.embedded: expected 'auto', 'on' or 'off', got {config.embedded!r}")
    embedded: EmbeddedAgent | None = None
    if await asyncio.to_thread(_runs_embedded, config):
        embedded = await asyncio.to_thread(_start_embedded, config, context)
    else:
        _tell_if_sinks_ignored(config)
    target = config.endpoint
    if embedded is not None and embedded.places.intake_endpoint != endpoint.intake_endpoint():
        target = embedded.places.intake_endpoint  # "on" where the host has its own agent
    owned = target is not None
    emitter = Emitter(target) if owned else get_emitter()
    emitter.linger_ms = _linger_s(config) * 1000
    try:
        # The default emitter is reached through the logger's defaults, so capture_events() sees it.
        yield AuditLogger(
            config,
            context,
            emit=emitter.emit if owned else None,
            submit=emitter.submit if owned else None,
        )
    finally:
        await asyncio.to_thread(emitter.flush, FLUSH_TIMEOUT_S)
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        if owned:
            await asyncio.to_thread(emitter.close, 0)


def _runs_embedded(config: AuditConfig) -> bool:
    if config.embedded != "auto":
        return config.embedded == "on"
    if config.endpoint or os.environ.get("AUDITSHIP_ENDPOINT") or endpoint.agent_installed():
        return False
    return not agent_answers()


def _start_embedded(config: AuditConfig, context: AuditContext) -> EmbeddedAgent | None:
    agent = EmbeddedAgent.for_service(config, context.compliance_requirements)
    try:
        agent.start()
    except (RuntimeError, OSError) as exc:
        if config.embedded == "on":
            raise
        log.warning(
            "no audit-agent runs on this host and the embedded one could not start: %s. Events wait in "
            "the spool (%s) until an agent takes them.",
            exc,
            endpoint.spool_dir(endpoint.intake_endpoint()),
        )
        return None
    return agent


def _tell_if_sinks_ignored(config: AuditConfig) -> None:
    defaults = AuditConfig()
    asked = [
        f.name
        for f in fields(AuditConfig)
        if f.name in _AGENT_SETTINGS and getattr(config, f.name) != getattr(defaults, f.name)
    ]
    if asked and "sinks" not in _told:
        _told.add("sinks")
        log.warning(
            "AuditConfig sets %s, which configure an agent's sinks: the host's audit-agent decides them "
            "in its own config file (/etc/auditship/agent.toml), so these settings are not used here",
            ", ".join(asked),
        )


def _linger_s(config: AuditConfig) -> float:
    linger = config.flush_interval_seconds
    if not linger >= 0:  # NaN too
        raise ValueError(f"AuditConfig.flush_interval_seconds: must be 0 or more, got {linger}")
    if linger > MAX_LINGER_S:
        if "linger" not in _told:
            _told.add("linger")
            log.warning(
                "AuditConfig.flush_interval_seconds=%g: an event waits in a service's memory at most "
                "%g s before it is sent or spooled; using %g s",
                linger,
                MAX_LINGER_S,
                MAX_LINGER_S,
            )
        return MAX_LINGER_S
    return linger
