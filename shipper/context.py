"""`audit_context(config, context)`: the seed's way to get an AuditLogger for the life of a block."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from shipper.config import AuditConfig, AuditContext
from shipper.embedded import EmbeddedAgent, agent_answers, agent_config
from shipper.emitter import Emitter, get_emitter
from shipper.logger import AuditLogger

FLUSH_TIMEOUT_S = 10.0


@contextlib.asynccontextmanager
async def audit_context(config: AuditConfig, context: AuditContext) -> AsyncIterator[AuditLogger]:
    """Yield an AuditLogger sending to this host's agent; when none answers, run an embedded one.

    On exit, waits (up to 10 s) for the agent to confirm every event, then drains and stops the embedded
    agent if it started one. What is still unconfirmed by then goes to the spool, not away.
    """
    owned = config.endpoint is not None
    emitter = Emitter(config.endpoint) if owned else get_emitter()
    embedded: EmbeddedAgent | None = None
    if not owned and not await asyncio.to_thread(agent_answers):
        embedded = EmbeddedAgent(agent_config(config))
        await asyncio.to_thread(embedded.start)
    try:
        # The default emitter is reached through the logger's default, so capture_events() sees it.
        yield AuditLogger(config, context, emit=emitter.emit if owned else None)
    finally:
        await asyncio.to_thread(emitter.flush, FLUSH_TIMEOUT_S)
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        if owned:
            await asyncio.to_thread(emitter.close, 0)
