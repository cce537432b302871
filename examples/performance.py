"""Performance testing: how fast a service can emit, and what reached the agent.

    python examples/performance.py [EVENTS]

emit() encodes the event and hands it to a batch in a few microseconds; a background thread sends the
batches, and the agent confirms them once they are in its write-ahead log. `flush()` waits for those
confirmations. For measurements against other loggers, see `python -m bench`.
"""

from __future__ import annotations

import asyncio
import sys
import time

from shipper import AuditConfig, AuditContext, AuditEvent, AuditEventType, audit_context, get_emitter


async def main(count: int) -> None:
    context = AuditContext(service_name="load-test")
    async with audit_context(AuditConfig(), context):
        emitter = get_emitter()
        started = time.perf_counter()
        for number in range(count):
            emitter.emit(
                AuditEvent(
                    event_type=AuditEventType.API_REQUEST,
                    service_name=context.service_name,
                    endpoint="/api/items/{id}",
                    status_code=200,
                    details={"n": number},
                )
            )
        emitted = time.perf_counter() - started
        confirmed = await asyncio.to_thread(emitter.flush, 30.0)
        total = time.perf_counter() - started
        stats = emitter.stats
    print(
        f"{count} events emitted in {emitted:.3f} s ({count / emitted:,.0f}/s, "
        f"{emitted / count * 1e6:.1f} us each); all confirmed after {total:.3f} s: {confirmed}"
    )
    print(f"sent {stats.sent}, confirmed {stats.confirmed}, spilled {stats.spilled}, dropped {stats.dropped}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
