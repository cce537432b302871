"""Calls cut short, as a script, so that a server that crashes fails a test instead of killing pytest.

`python -m tests.shipper.middleware.grpc_cut_short` serves the Ends service (grpc_service.py) audited,
on each kind of server and handler (FLAVOURS), and cuts a call of each kind short in two ways, all calls
of a way at once: by a deadline that passes while the handler runs (sync handlers run on past the end of
the call; async ones are cancelled with it), and by the client cancelling it once its handler runs.
Then it prints one JSON line per call: {"flavour", "kind", "how", "client" (the code the client got),
"recorded" (the grpc_status of each API_REQUEST event recorded for it), "peers" (their peers)}.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any

import grpc

from shipper.event import AuditEventType
from shipper.middleware.grpc_server import AioAuditServerInterceptor, AuditServerInterceptor
from shipper.testing import capture_events
from tests.shipper.middleware.grpc_service import (
    AWAIT_CANCEL,
    CALL_KINDS,
    OUTLIVE_DEADLINE,
    WAIT_S,
    WAITS,
    Ends,
    client_code,
    grpc_server,
    start_call,
)
from tests.waiting import wait_for

# Flavour -> (server kind, async handlers).
FLAVOURS = {"sync": ("sync", False), "aio": ("aio", True), "aio-sync": ("aio", False)}
DEADLINE_S = 0.5
# A bound on every wait: the calls themselves are bounded by their deadlines (WAIT_S * WAITS at most).
WAIT_FOR_S = 20.0

Call = tuple[str, str, bytes, Any]  # flavour, kind, how it is cut short, the client's call


def main() -> None:
    with capture_events() as events:
        with ExitStack() as servers:
            ends: dict[str, Ends] = {}
            channels: dict[str, grpc.Channel] = {}
            for flavour, (server_kind, async_handlers) in FLAVOURS.items():
                service = ends[flavour] = Ends()
                interceptor = (
                    AioAuditServerInterceptor() if server_kind == "aio" else AuditServerInterceptor()
                )
                channels[flavour] = servers.enter_context(
                    grpc_server(
                        server_kind,
                        lambda server, s=service, a=async_handlers: server.add_generic_rpc_handlers(
                            (s.generic(a),)
                        ),
                        [interceptor],
                    )
                )
            calls: dict[str, tuple[str, str, bytes, grpc.StatusCode]] = {}
            late = _start(channels, OUTLIVE_DEADLINE, DEADLINE_S)
            calls.update(_ended(late))
            cancelled = _start(channels, AWAIT_CANCEL, WAIT_S * WAITS)
            started = 2 * len(CALL_KINDS)
            wait_for(
                lambda: all(len(service.started) == started for service in ends.values()),
                WAIT_FOR_S,
                "every handler of the calls to cancel to start",
            )
            for *_, call in cancelled.values():
                call.cancel()
            calls.update(_ended(cancelled))
            wait_for(
                lambda: {event.correlation_id for event in events} >= set(calls),
                WAIT_FOR_S,
                "an event for every call",
            )
            for service in ends.values():
                service.released.set()
            # Until every handler has returned: a sync one on an aio server returns after its call ended.
            wait_for(
                lambda: all(len(service.finished) == started for service in ends.values()),
                WAIT_FOR_S,
                "every handler to return",
            )
    for request_id, (flavour, kind, how, code) in calls.items():
        recorded = events.of_type(AuditEventType.API_REQUEST)
        recorded = [event for event in recorded if event.correlation_id == request_id]
        line = {
            "flavour": flavour,
            "kind": kind,
            "how": how.decode(),
            "client": code.name,
            "recorded": [event.details["grpc_status"] for event in recorded],
            "peers": [event.details["peer"] for event in recorded],
        }
        print(json.dumps(line))


def _start(channels: dict[str, grpc.Channel], how: bytes, timeout: float) -> dict[str, Call]:
    """A call of each kind on each server, asking its handler to end `how`, by request id."""
    return {
        f"{flavour}-{kind}-{how.decode()}": (
            flavour,
            kind,
            how,
            start_call(channel, kind, how, f"{flavour}-{kind}-{how.decode()}", timeout),
        )
        for flavour, channel in channels.items()
        for kind in CALL_KINDS
    }


def _ended(calls: dict[str, Call]) -> dict[str, tuple[str, str, bytes, grpc.StatusCode]]:
    return {
        request_id: (flavour, kind, how, client_code(kind, call))
        for request_id, (flavour, kind, how, call) in calls.items()
    }


if __name__ == "__main__":
    main()
