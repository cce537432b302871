"""Custom event building: the fluent builder, a hand-made AuditEvent, and emit() without the logger.

python examples/custom_events.py
"""

from __future__ import annotations

import asyncio

from shipper import (
    AuditConfig,
    AuditContext,
    AuditEvent,
    AuditEventType,
    AuditSeverity,
    audit_context,
    emit,
)


async def main() -> None:
    context = AuditContext(service_name="payments", compliance_requirements=["PCI"])
    async with audit_context(AuditConfig(), context) as audit_logger:
        payment = (
            audit_logger.create_event_builder()
            .event_type(AuditEventType.BUSINESS_LOGIC)
            .message("Payment processed successfully")
            .user("customer123")
            .action("process_payment")
            .resource("payment", "pay-789")
            .performance(42.5)
            .detail("amount", 99.99)
            .detail("currency", "EUR")
            .sensitive_detail("card_number", "4111-1111-1111-1111")
            .build()
        )
        await audit_logger.log_event(payment)

        # Acknowledged: returns once the agent has the event in its write-ahead log, synced.
        refund = AuditEvent(
            event_type=AuditEventType.TRANSACTION,
            severity=AuditSeverity.MEDIUM,
            message="Refund issued",
            user_id="customer123",
            resource_type="payment",
            resource_id="pay-789",
            service_name=context.service_name,
            details={"amount": -99.99},
        )
        await audit_logger.log_event(refund, durable=True)

        # The whole API without the logger: emit() never blocks and never raises.
        emit(AuditEvent(event_type=AuditEventType.WORKFLOW, message="nightly settlement started"))

    async for event in audit_logger.search_events(resource_id="pay-789"):
        # Sensitive values are encrypted by the agent before anything is written.
        encrypted = ", ".join(event.sensitive) or "none"
        print(f"{event.event_type}: {event.message} (sensitive fields, encrypted: {encrypted})")


if __name__ == "__main__":
    asyncio.run(main())
