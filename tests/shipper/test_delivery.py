"""Acknowledged emit: `emit(event, wait=...)`, `Emitter.submit`, `log_event(..., durable=True)` and
`AuditConfig.fail_closed` return once the agent has the event in its WAL, synced; and raise
AuditDeliveryError, losing nothing, when it does not answer in time."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from pathlib import Path

import msgspec
import pytest
import zmq

from shipper.config import AuditConfig, AuditContext
from shipper.emitter import Emitter
from shipper.endpoint import confirm_endpoint
from shipper.errors import AuditDeliveryError, AuditRefusedError
from shipper.event import AuditEvent, AuditEventType
from shipper.logger import AuditLogger
from shipper.testing import capture_events
from shipper.wire import Hello, frame_encoder
from tests.agentproc import RunningAgent
from tests.waiting import wait_for


def _event(service: AuditContext, number: int) -> AuditEvent:
    return AuditEvent(
        event_type=AuditEventType.DATA_EXPORT, service_name=service.service_name, details={"n": number}
    )


def test_an_acknowledged_emit_returns_with_the_event_in_the_wal(
    audit_agent: RunningAgent, agent_emitter: Emitter, service_context: AuditContext, delivered_events
) -> None:
    """wait= returns only after the intake confirmed the event, which it does after syncing the WAL:
    `audit-agent status` counts that sync (`ack_syncs`)."""
    before = agent_emitter.stats.confirmed
    agent_emitter.emit(_event(service_context, 0), wait=10)
    assert agent_emitter.stats.confirmed == before + 1
    wait_for(lambda: audit_agent.counters("intake").get("ack_syncs", 0) >= 1, 10, "ack_syncs in the status")
    assert [e.details["n"] for e in delivered_events(1)] == [0]


def test_many_threads_waiting_at_once_are_each_acknowledged(
    agent_emitter: Emitter, service_context: AuditContext, delivered_events
) -> None:
    """32 threads, 20 acknowledged emits each: every call returns, every event arrives once."""
    errors: list[BaseException] = []

    def caller(thread: int) -> None:
        try:
            for number in range(20):
                agent_emitter.emit(_event(service_context, thread * 100 + number), wait=20)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    numbers = sorted(e.details["n"] for e in delivered_events(640))
    assert numbers == sorted(t * 100 + n for t in range(32) for n in range(20))


def test_log_event_durable_waits_without_blocking_the_event_loop(
    agent_emitter: Emitter, service_context: AuditContext, delivered_events
) -> None:
    """64 asyncio tasks log durably at once; a ticker task keeps running meanwhile."""
    logger = AuditLogger(AuditConfig(), service_context, emit=agent_emitter.emit, submit=agent_emitter.submit)

    async def main() -> int:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        tick_task = asyncio.create_task(ticker())
        await asyncio.gather(*(logger.log_event(_event(service_context, n), durable=True) for n in range(64)))
        done.set()
        await tick_task
        return ticks

    assert asyncio.run(main()) > 0
    assert sorted(e.details["n"] for e in delivered_events(64)) == list(range(64))


def test_with_no_agent_an_acknowledged_emit_raises_in_time_and_the_event_is_spooled() -> None:
    """Fail closed: the caller hears of it (AuditDeliveryError naming the event); the event is not lost."""
    runtime = Path(tempfile.mkdtemp(prefix="as-ack-", dir="/tmp"))
    emitter = Emitter(f"ipc://{runtime / 'intake.sock'}", spill_after_s=0.1, linger_ms=10)
    event = AuditEvent(event_type=AuditEventType.DATA_EXPORT)
    try:
        with pytest.raises(AuditDeliveryError, match=event.event_id):
            emitter.emit(event, wait=0.5)
        assert emitter.flush(1) is True
        assert emitter.stats.spilled == 1
    finally:
        emitter.close(0)
        shutil.rmtree(runtime, ignore_errors=True)


def test_fail_closed_and_async_logging_false_make_every_logging_call_acknowledged() -> None:
    """Both settings route the seed's methods through submit; a logger given emit alone refuses them."""
    submitted: list[AuditEvent] = []

    def submit(event: AuditEvent):
        from shipper.receipt import Receipt

        submitted.append(event)
        return Receipt(event.event_id)

    for config in (AuditConfig(fail_closed=True), AuditConfig(async_logging=False)):
        logger = AuditLogger(config, AuditContext(service_name="s"), emit=lambda e: None, submit=submit)
        asyncio.run(logger.log_auth_event(AuditEventType.USER_LOGIN, "u1"))
    assert [e.user_id for e in submitted] == ["u1", "u1"]
    with pytest.raises(ValueError, match="fail_closed"):
        AuditLogger(AuditConfig(fail_closed=True), AuditContext(service_name="s"), emit=lambda e: None)


def test_a_durable_event_inside_capture_events_is_captured_and_acknowledged_at_once() -> None:
    """Users' own tests need no agent for durable logging either."""
    logger = AuditLogger(AuditConfig(fail_closed=True), AuditContext(service_name="s"))
    with capture_events() as events:
        asyncio.run(logger.log_auth_event(AuditEventType.USER_LOGIN, "u2"))
    assert [e.user_id for e in events] == ["u2"]


def test_a_receipt_nobody_can_still_be_acknowledged_for_is_not_kept() -> None:
    """A cancelled durable call, and an acknowledged emit whose event was spooled, leave no receipt
    behind: the emitter's sending thread would otherwise keep watching for them for ever."""
    runtime = Path(tempfile.mkdtemp(prefix="as-ack-", dir="/tmp"))
    emitter = Emitter(f"ipc://{runtime / 'intake.sock'}", spill_after_s=0.1, linger_ms=10)
    logger = AuditLogger(
        AuditConfig(), AuditContext(service_name="s"), emit=emitter.emit, submit=emitter.submit
    )

    async def cancelled() -> None:
        task = asyncio.create_task(
            logger.log_event(AuditEvent(event_type=AuditEventType.DATA_EXPORT), durable=True)
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(cancelled())
        emitter.submit(AuditEvent(event_type=AuditEventType.DATA_EXPORT))  # nobody waits on this one
        wait_for(lambda: emitter.stats.spilled == 2 and not emitter._receipts, 10, "both spooled, no receipt")
    finally:
        emitter.close(0)
        shutil.rmtree(runtime, ignore_errors=True)


def test_an_event_the_agent_refuses_is_counted_refused_not_confirmed_and_its_waiter_is_told(
    agent_emitter: Emitter, service_context: AuditContext, delivered_events
) -> None:
    """`status_code="200"` (msgspec checks no types when an event is built) is refused by the intake, to
    rejects/: the emitter counts it refused, not confirmed, and an acknowledged emit of it raises
    AuditRefusedError at once instead of returning as if it were stored; the event after it is stored."""
    bad = AuditEvent(event_type=AuditEventType.API_REQUEST, service_name=service_context.service_name)
    bad.status_code = "200"  # type: ignore[assignment]
    before = agent_emitter.stats
    agent_emitter.emit(bad)
    refused_too = msgspec.structs.replace(bad, event_id="refused-too")
    with pytest.raises(AuditRefusedError, match="refused-too"):
        agent_emitter.emit(refused_too, wait=10)
    agent_emitter.emit(_event(service_context, 1), wait=10)
    after = agent_emitter.stats
    assert (after.refused - before.refused, after.confirmed - before.confirmed) == (2, 1)
    assert [e.details["n"] for e in delivered_events(1)] == [1]


def test_confirmations_go_only_to_the_connections_that_asked_for_their_emitter_id(
    agent_emitter: Emitter, service_context: AuditContext
) -> None:
    """A connection to the confirmation socket that says no hello, and one that says hello with another
    emitter id, hear nothing while the emitter's events are confirmed to it (across users the same holds
    for the victim's own id: tests/deploy/test_attackers.py)."""
    with zmq.Context() as context, context.socket(zmq.DEALER) as silent, context.socket(zmq.DEALER) as other:
        silent.connect(confirm_endpoint(agent_emitter.endpoint))
        other.connect(confirm_endpoint(agent_emitter.endpoint))
        other.send(frame_encoder.encode(Hello("someone-else")))
        before = agent_emitter.stats.confirmed
        for number in range(5):
            agent_emitter.emit(_event(service_context, number), wait=10)
        assert agent_emitter.stats.confirmed - before == 5
        assert not silent.poll(1500) and not other.poll(0)
