"""`audit-agent demo`: the agent with a demo emitter, writing real events, on the embedded defaults.

Starts the agent as its own process tree (as systemd would), emits a realistic mix from three
services through AuditLogger (logins with some failures, API calls, patient-record reads with a
sensitive field, payments), waits until the file sink has every event, prints what happened and
where to look, then stops the agent with SIGTERM (a drain).
"""

from __future__ import annotations

import asyncio
import random
import time

from auditship.agents.config import AgentConfig
from auditship.agents.embedded import embedded_agent
from shipper.config import AuditConfig, AuditContext
from shipper.control import request_status
from shipper.emitter import Emitter
from shipper.event import AuditEventType, AuditOutcome, AuditSeverity
from shipper.logger import AuditLogger

SERVICES = ("patient-portal", "billing", "auth-gateway")


async def _emit_mix(loggers: list[AuditLogger], count: int) -> None:
    rng = random.Random(7)  # noqa: S311 - demo data, not secrets
    for number in range(count):
        logger = loggers[number % len(loggers)]
        user = f"user{rng.randrange(200)}"
        kind = number % 4
        if kind == 0:
            failed = rng.random() < 0.05
            await logger.log_auth_event(
                AuditEventType.AUTH_FAILURE if failed else AuditEventType.USER_LOGIN,
                user_id=user,
                outcome=AuditOutcome.FAILURE if failed else AuditOutcome.SUCCESS,
                source_ip=f"10.0.{rng.randrange(4)}.{rng.randrange(1, 255)}",
                details={"method": "password", "mfa": True},
            )
        elif kind == 1:
            await logger.log_api_event(
                method="GET",
                endpoint="/api/patients/{patient_id}",
                status_code=rng.choice((200, 200, 200, 404, 500)),
                user_id=user,
                duration_ms=round(rng.uniform(2, 80), 1),
            )
        elif kind == 2:
            await logger.log_data_event(
                AuditEventType.DATA_ACCESS,
                resource_type="patient_record",
                resource_id=f"patient-{rng.randrange(1000)}",
                action="view",
                user_id=user,
                sensitive={"diagnosis_code": f"E11.{rng.randrange(10)}"},
            )
        else:
            event = (
                logger.create_event_builder()
                .event_type(AuditEventType.TRANSACTION)
                .message("Payment processed")
                .user(user)
                .action("process_payment")
                .severity(AuditSeverity.MEDIUM)
                .resource("payment", f"pay-{number}")
                .detail("amount", round(rng.uniform(5, 500), 2))
                .sensitive_detail("card_number", f"****-****-****-{rng.randrange(10_000):04d}")
                .build()
            )
            await logger.log_event(event)
        if number % 500 == 499:
            await asyncio.sleep(0.005)  # a service's pace, not a flood


def run_demo(config: AgentConfig, count: int) -> int:
    agent = embedded_agent(config)
    agent.start()
    emitter = Emitter(config.intake_endpoint)
    audit = AuditConfig()
    loggers = [AuditLogger(audit, AuditContext(service_name=name), emit=emitter.emit) for name in SERVICES]
    started = time.monotonic()
    asyncio.run(_emit_mix(loggers, count))
    emitted = time.monotonic() - started
    confirmed = emitter.flush(30)
    emitter.close()
    _wait_delivered(config, timeout_s=60)
    status = request_status(config.runtime_path)
    code = agent.stop()
    print(
        f"emitted {count} events from {len(SERVICES)} services in {emitted:.2f}s ({count / emitted:,.0f}/s)"
    )
    print(f"emitter: {emitter.stats}  all confirmed: {confirmed}")
    if status is not None:
        for worker in status.workers:
            print(f"  {worker.name:<14} {worker.counters}")
    print(f"agent drained and exited with code {code}")
    print(
        f"files:   {config.data_path / 'files'}  (read them: audit-query cat --data-dir {config.data_path})"
    )
    print(f"decrypt: audit-query cat --data-dir {config.data_path} --keys-dir {config.keys_path} --decrypt")
    print(f"verify:  audit-query verify --data-dir {config.data_path} --keys-dir {config.keys_path}")
    return 0 if confirmed and code == 0 else 1


def _wait_delivered(config: AgentConfig, timeout_s: float) -> None:
    """Until every sink's cursor has reached the intake's last WAL seq."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = request_status(config.runtime_path)
        if status is not None:
            last = next((w.counters.get("last_seq", 0) for w in status.workers if w.name == "intake"), 0)
            sinks = [w.counters.get("committed", 0) for w in status.workers if w.name.startswith("sink:")]
            if last and all(committed >= last for committed in sinks):
                return
        time.sleep(0.2)
