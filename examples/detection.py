"""Detection: a brute-force run against one account and a password-spraying run from one address, found by
the agent's rules over the lake, with the events that make each finding.

    python examples/detection.py

The agent also runs the same rules as its events arrive (its `detect` worker) and sends each alert back
through the intake as a SUSPICIOUS_ACTIVITY or SECURITY_VIOLATION event; `detect_anomalies` asks the lake
the same questions after the fact, for investigations and for tuning thresholds ([detect] in agent.toml).
"""

from __future__ import annotations

import asyncio

from shipper import AuditConfig, AuditContext, AuditEventType, AuditOutcome, audit_context


async def main() -> None:
    context = AuditContext(service_name="identity", environment="example")
    async with audit_context(AuditConfig(), context) as audit_logger:
        # Twelve wrong passwords for one account, from one address: brute force (10 within 5 minutes).
        for _ in range(12):
            await audit_logger.log_auth_event(
                AuditEventType.AUTH_FAILURE,
                user_id="mallory-target",
                outcome=AuditOutcome.FAILURE,
                source_ip="203.0.113.9",
                details={"reason": "bad password"},
            )
        # One address trying one password on twelve accounts: spraying (10 users within 10 minutes).
        for number in range(12):
            await audit_logger.log_auth_event(
                AuditEventType.AUTH_FAILURE,
                user_id=f"employee{number:02d}",
                outcome=AuditOutcome.FAILURE,
                source_ip="198.51.100.4",
                details={"reason": "bad password"},
            )
        # An ordinary login, which nothing flags.
        await audit_logger.log_auth_event(AuditEventType.USER_LOGIN, user_id="alice", source_ip="10.0.0.5")

    findings = await audit_logger.detect_anomalies(rules=["brute_force_user", "password_spraying"])
    print(f"{len(findings)} findings:")
    for finding in findings:
        key = ", ".join(f"{name}={value}" for name, value in finding["key"].items())
        print(
            f"  {finding['rule']:<18} {finding['severity']:<9} {key:<26} {finding['count']:.0f} reached "
            f"the threshold of {finding['threshold']:.0f} in {finding['window_s']:.0f} s"
        )


if __name__ == "__main__":
    asyncio.run(main())
