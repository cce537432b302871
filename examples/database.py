"""Database integration: the agent's SQL sink writes every event to a table, here SQLite.

    python examples/database.py [DATABASE_URL]

The default is a SQLite file beside the data directory; PostgreSQL and MySQL/MariaDB URLs work too
(`postgresql+psycopg://...`, `mysql+pymysql://...`, with their driver installed). The service names the
database; the agent does the writing, in batches, and creates the table.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from shipper import AuditConfig, AuditContext, AuditEventType, DatabaseAuditDestination, audit_context


async def main(url: str) -> None:
    config = AuditConfig()
    config.destinations = [DatabaseAuditDestination(url=url, batch_size=100)]
    async with audit_context(config, AuditContext(service_name="orders")) as audit_logger:
        for number in range(3):
            await audit_logger.log_data_event(
                AuditEventType.DATA_CREATE, "order", f"order-{number}", "create_order", user_id="bob"
            )

    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            sqlalchemy.text("SELECT event_type, resource_id, user_id FROM audit_events ORDER BY resource_id")
        ).all()
    engine.dispose()
    for row in rows:
        print(f"  {row.event_type} {row.resource_id} by {row.user_id}")


if __name__ == "__main__":
    data = Path(os.environ.get("AUDITSHIP_DATA_DIR", "auditship-data")).absolute()
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{data.parent / 'audit-example.db'}"))
