"""Basic setup: a service logs authentication, data and security events, then reads them back.

    python examples/basic_setup.py

Needs `pip install 'auditship[agent]'` when no agent runs on this host: `audit_context` then starts an
embedded one, writing under ./auditship-data (or $AUDITSHIP_DATA_DIR), and drains it when the block ends,
so every event logged inside the block can be searched after it.
"""

from __future__ import annotations

import asyncio

from shipper import AuditConfig, AuditContext, AuditEventType, AuditOutcome, audit_context


async def main() -> None:
    config = AuditConfig()
    config.enable_file_logging = True
    context = AuditContext(service_name="accounts", service_version="1.0.0", environment="example")

    async with audit_context(config, context) as audit_logger:
        await audit_logger.log_auth_event(
            AuditEventType.USER_LOGIN, user_id="user123", source_ip="192.168.1.100"
        )
        await audit_logger.log_auth_event(
            AuditEventType.AUTH_FAILURE,
            user_id="user123",
            outcome=AuditOutcome.FAILURE,
            source_ip="203.0.113.7",
            details={"reason": "bad password"},
        )
        await audit_logger.log_data_event(
            AuditEventType.DATA_UPDATE,
            "user",
            "user123",
            "update_email",
            user_id="user123",
            changes={"email": "new@example.com"},
            sensitive={"previous_email": "old@example.com"},
        )
        await audit_logger.log_security_event(
            AuditEventType.SUSPICIOUS_ACTIVITY, "login from a new country", source_ip="203.0.113.7"
        )

    # The block drained the agent: everything above is in the lake now.
    print("events of user123, newest first:")
    async for event in audit_logger.search_events(user_id="user123"):
        print(f"  {event.timestamp:%H:%M:%S} {event.event_type:<16} {event.outcome:<8} {event.message}")
    stats = await audit_logger.get_audit_statistics()
    print(f"total {stats['total_events']}, security {stats['security_events']}")


if __name__ == "__main__":
    asyncio.run(main())
