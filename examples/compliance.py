"""Compliance scenarios: HIPAA access to a patient record, a GDPR export and erasure request, a SOX
configuration change, each tagged with its framework, sensitive values encrypted, and the question an
auditor asks answered from the lake: who touched patient 456?

    python examples/compliance.py
"""

from __future__ import annotations

import asyncio

from shipper import AuditConfig, AuditContext, AuditEventType, AuditOutcome, audit_context


async def main() -> None:
    config = AuditConfig()
    config.retention_days = 6 * 365  # HIPAA keeps audit records six years
    context = AuditContext(service_name="ehr", compliance_requirements=["HIPAA", "GDPR", "SOX"])

    async with audit_context(config, context) as audit_logger:
        # HIPAA: every read of protected health information, with what was seen kept encrypted.
        await audit_logger.log_data_event(
            AuditEventType.DATA_READ,
            "patient",
            "456",
            "view_chart",
            user_id="dr.smith",
            sensitive={"diagnosis": "J45.909", "ssn": "123-45-6789"},
        )
        await audit_logger.log_data_event(
            AuditEventType.DATA_READ,
            "patient",
            "456",
            "view_chart",
            user_id="nurse.jones",
            outcome=AuditOutcome.FAILURE,
            details={"reason": "not on the care team"},
        )
        # GDPR: a data subject's export and erasure requests are audited too.
        await audit_logger.log_data_event(
            AuditEventType.DATA_EXPORT, "data_subject", "user-789", "gdpr_export", user_id="privacy-officer"
        )
        await audit_logger.log_data_event(
            AuditEventType.DATA_DELETE, "data_subject", "user-789", "gdpr_erasure", user_id="privacy-officer"
        )
        # SOX: a change to a financial control, with the before and after.
        await audit_logger.log_system_event(
            AuditEventType.CONFIGURATION_CHANGE,
            "approval threshold raised",
            details={"setting": "payments.approval_threshold", "from": 10_000, "to": 25_000},
        )

    print("who touched patient 456:")
    async for event in audit_logger.search_events(resource_type="patient", resource_id="456"):
        print(f"  {event.user_id:<12} {event.action} {event.outcome} compliance={event.compliance}")


if __name__ == "__main__":
    asyncio.run(main())
