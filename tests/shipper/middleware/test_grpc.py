"""The gRPC interceptors end to end: a real `grpc.server` and `grpc.aio.server` on 127.0.0.1, called by a
real client, for all four kinds of call; the events are asserted where they arrive, in a real agent's file
or a capture. Calls cut short by a deadline or the client run in a process of their own (grpc_cut_short.py):
such a call crashed the server's process once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import grpc
import pytest

from shipper.config import AuditContext
from shipper.emitter import Emitter
from shipper.event import AuditEvent
from shipper.middleware.config import AuditMiddlewareConfig
from shipper.middleware.grpc_server import (
    AioAuditServerInterceptor,
    AuditServerInterceptor,
    metadata_user,
    setup_grpc_audit_interceptor,
)
from shipper.middleware.recorder import AuditRecorder
from shipper.testing import capture_events
from tests.shipper.middleware.grpc_cut_short import FLAVOURS
from tests.shipper.middleware.grpc_service import (
    CALL_KINDS,
    ENDINGS,
    NAMED_USER,
    NAMES_USER,
    OUTCOMES,
    REGISTERED,
    SERVICE,
    STREAMED,
    Ends,
    Handlers,
    add_registered,
    client_code,
    grpc_server,
    identity,
    start_call,
    unary,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

Delivered = Callable[[int], list[AuditEvent]]
KINDS = ["sync", "aio"]
REFUSALS = ("auth_failure", "access_denied", "rate_limit_exceeded")
METADATA = (("x-request-id", "call-7"), ("x-user-id", "alice"))


def interceptor(kind: str, recorder: AuditRecorder) -> AuditServerInterceptor | AioAuditServerInterceptor:
    return (
        AioAuditServerInterceptor(recorder=recorder)
        if kind == "aio"
        else AuditServerInterceptor(recorder=recorder)
    )


def serve(
    kind: str, handlers: Handlers, recorder: AuditRecorder, async_handlers: bool | None = None
) -> AbstractContextManager[grpc.Channel]:
    """The service's handlers on a server of `kind` audited by an interceptor; the handlers are async
    ones on an aio server unless `async_handlers` says otherwise."""
    aio = kind == "aio" if async_handlers is None else async_handlers
    return grpc_server(
        kind,
        lambda server: server.add_generic_rpc_handlers((handlers.generic(aio),)),
        [interceptor(kind, recorder)],
    )


@pytest.mark.parametrize(("kind", "async_handlers"), [("sync", False), ("aio", True), ("aio", False)])
def test_every_kind_of_call_yields_an_event_with_its_method_peer_user_status_and_ids(
    kind: str,
    async_handlers: bool,
    service_context: AuditContext,
    agent_emitter: Emitter,
    delivered_events: Delivered,
) -> None:
    """Unary, server-streaming, client-streaming and bidirectional calls each yield one API_REQUEST (on an
    aio server from async handlers and from sync ones alike); the handlers' own events carry the call's
    correlation id, which comes back in the trailing metadata. The user is the `x-user-id` metadata, as
    the service asked by giving metadata_user."""
    config = AuditMiddlewareConfig(grpc_user_resolver=metadata_user)
    recorder = AuditRecorder(config, context=service_context, emit=agent_emitter.emit)
    handlers = Handlers(service_context, agent_emitter.emit)
    with serve(kind, handlers, recorder, async_handlers) as channel:
        answer, call = unary(channel, f"/{SERVICE}/Get").with_call(b"ok", metadata=METADATA)
        listed = list(channel.unary_stream(f"/{SERVICE}/List", identity, identity)(b"", metadata=METADATA))
        uploaded = channel.stream_unary(f"/{SERVICE}/Upload", identity, identity)(
            iter([b"a", b"b"]), metadata=METADATA
        )
        chatted = list(
            channel.stream_stream(f"/{SERVICE}/Chat", identity, identity)(
                iter([b"x", b"y"]), metadata=METADATA
            )
        )
    assert (answer, listed, uploaded, chatted) == (b"ok", STREAMED, b"ab", [b"x", b"y"])
    assert ("x-request-id", "call-7") in call.trailing_metadata()
    events = delivered_events(1 + 4 + len(STREAMED))
    reads = [event for event in events if event.event_type == "data_read"]
    requests = [event for event in events if event.event_type == "api_request"]
    assert [event.endpoint for event in requests] == [
        f"/{SERVICE}/{name}" for name in ("Get", "List", "Upload", "Chat")
    ]
    assert len(reads) == 1 + len(STREAMED)
    for event in reads + requests:
        assert event.correlation_id == event.request_id == "call-7"
    for event in requests:
        assert event.method == "GRPC"
        assert (event.status_code, event.outcome, event.details["grpc_status"]) == (200, "success", "OK")
        assert event.source_ip == "127.0.0.1"
        assert str(event.details["peer"]).startswith("ipv4:127.0.0.1:")
        assert event.user_id == "alice"
        assert (event.user_agent or "").startswith("grpc-python")
        assert event.duration_ms is not None and event.duration_ms > 0
        assert event.service_name == service_context.service_name
    assert recorder.stats.requests == 4


@pytest.mark.parametrize(("kind", "async_handlers"), [("sync", False), ("aio", True), ("aio", False)])
def test_caller_metadata_names_no_user_by_default_and_the_handler_does(
    kind: str, async_handlers: bool, service_context: AuditContext
) -> None:
    """A caller's `x-user-id` is not believed unless the service gives metadata_user: an unauthenticated
    call claiming admin has no user; a handler that authenticated the caller names it with
    set_audit_user, on either server and from sync and async handlers."""
    claims_admin = (("x-user-id", "admin@example.com"),)
    with capture_events() as events:
        recorder = AuditRecorder(AuditMiddlewareConfig(detect_anomalies=False), context=service_context)
        handlers = Handlers(service_context, lambda event: None)
        with serve(kind, handlers, recorder, async_handlers) as channel:
            get = unary(channel, f"/{SERVICE}/Get")
            get(b"anonymous", metadata=claims_admin)
            get(NAMES_USER, metadata=claims_admin)
    users = {event.user_id for event in events if event.event_type == "api_request"}
    assert users == {None, NAMED_USER}


@pytest.mark.parametrize(("kind", "async_handlers"), [("sync", False), ("aio", True), ("aio", False)])
def test_aborts_set_codes_and_exceptions_become_statuses_and_security_events(
    kind: str,
    async_handlers: bool,
    service_context: AuditContext,
    agent_emitter: Emitter,
    delivered_events: Delivered,
) -> None:
    """UNAUTHENTICATED, PERMISSION_DENIED and RESOURCE_EXHAUSTED add AUTH_FAILURE, ACCESS_DENIED and
    RATE_LIMIT_EXCEEDED; a code the handler set is its status; an exception is UNKNOWN and an ERROR. Sync
    handlers on an aio server too, whose context cannot say the code."""
    recorder = AuditRecorder(
        AuditMiddlewareConfig(detect_anomalies=False), context=service_context, emit=agent_emitter.emit
    )
    codes = []
    handlers = Handlers(service_context, agent_emitter.emit)
    with serve(kind, handlers, recorder, async_handlers) as channel:
        get = unary(channel, f"/{SERVICE}/Get")
        for request in OUTCOMES:
            with pytest.raises(grpc.RpcError) as failed:
                get(request)
            codes.append(failed.value.code())  # type: ignore[attr-defined]
    assert codes == [code for _, code in OUTCOMES.values()]
    events = delivered_events(len(OUTCOMES) + 3)
    # A sync handler on an aio server is recorded from a pool thread: events of consecutive calls may
    # arrive in either order, so each call's event is found by its status.
    requests = {event.details["grpc_status"]: event for event in events if event.event_type == "api_request"}
    assert sorted((status, event.status_code, event.outcome) for status, event in requests.items()) == [
        ("NOT_FOUND", 404, "failure"),
        ("PERMISSION_DENIED", 403, "failure"),
        ("RESOURCE_EXHAUSTED", 429, "failure"),
        ("UNAUTHENTICATED", 401, "failure"),
        ("UNKNOWN", 500, "error"),
    ]
    assert requests["UNKNOWN"].details["exception"] == "RuntimeError"
    assert "exception" not in requests["UNAUTHENTICATED"].details  # an abort is the handler's answer
    # Not the handler's own DATA_READs: older grpcio returns from abort() in a sync handler on an aio server.
    derived = sorted((event.event_type, event.endpoint) for event in events if event.event_type in REFUSALS)
    assert derived == [
        ("access_denied", f"/{SERVICE}/Get"),
        ("auth_failure", f"/{SERVICE}/Get"),
        ("rate_limit_exceeded", f"/{SERVICE}/Get"),
    ]


def test_metadata_is_logged_with_credentials_redacted(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """With log_headers the call's metadata is in details, authorization and configured keys redacted,
    binary values as their length."""
    config = AuditMiddlewareConfig(log_headers=True, redact_headers=["x-api-key"])
    recorder = AuditRecorder(config, context=service_context, emit=agent_emitter.emit)
    metadata = (
        ("authorization", "Bearer t0k3n"),
        ("x-api-key", "k3y"),
        ("x-note", "kept"),
        ("blob-bin", b"\x00\x01\x02"),
    )
    with serve("sync", Handlers(service_context, agent_emitter.emit), recorder) as channel:
        unary(channel, f"/{SERVICE}/Get")(b"ok", metadata=metadata)
    _, event = delivered_events(2)
    logged = event.details["metadata"]
    assert {key: logged[key] for key in ("authorization", "x-api-key", "x-note", "blob-bin")} == {
        "authorization": "[REDACTED]",
        "x-api-key": "[REDACTED]",
        "x-note": "kept",
        "blob-bin": "<3 bytes>",
    }


@pytest.mark.parametrize("kind", KINDS)
def test_setup_on_a_created_server_audits_generic_and_registered_handlers_added_after_it(
    kind: str, service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """setup_grpc_audit_interceptor(server, config) before the servicers are added: calls through generic
    handlers and registered methods (generic ones too where grpcio has no registered methods) are audited,
    an excluded service is counted, a second setup refuses."""
    config = AuditMiddlewareConfig(exclude_paths=[f"/{REGISTERED}"])
    handlers = Handlers(service_context, agent_emitter.emit)
    recorders: list[AuditRecorder] = []

    def configure(server: grpc.Server) -> None:
        recorders.append(
            setup_grpc_audit_interceptor(server, config, context=service_context, emit=agent_emitter.emit)
        )
        with pytest.raises(ValueError, match="already set up"):
            setup_grpc_audit_interceptor(server, config)
        server.add_generic_rpc_handlers((handlers.generic(kind == "aio"),))
        add_registered(server, REGISTERED, handlers.registered(kind == "aio"))

    with grpc_server(kind, configure) as channel:
        with pytest.raises(grpc.RpcError):
            unary(channel, f"/{SERVICE}/Get")(b"missing")
        assert unary(channel, f"/{REGISTERED}/Ping")(b"") == b"pong"
    [event] = delivered_events(1)
    assert (event.endpoint, event.details["grpc_status"]) == (f"/{SERVICE}/Get", "NOT_FOUND")
    [recorder] = recorders
    assert (recorder.stats.requests, recorder.stats.excluded) == (1, 1)


@pytest.mark.skipif(
    not hasattr(grpc.Server, "add_registered_method_handlers"),
    reason="grpcio before 1.62: no registered methods",
)
def test_registered_methods_are_audited_under_their_full_name(
    service_context: AuditContext, agent_emitter: Emitter, delivered_events: Delivered
) -> None:
    """A method added with add_registered_method_handlers after setup is recorded as /service/method."""
    handlers = Handlers(service_context, agent_emitter.emit)

    def configure(server: grpc.Server) -> None:
        config = AuditMiddlewareConfig(grpc_user_resolver=metadata_user)
        setup_grpc_audit_interceptor(server, config, context=service_context, emit=agent_emitter.emit)
        server.add_registered_method_handlers(REGISTERED, handlers.registered(aio=False))

    with grpc_server("sync", configure) as channel:
        unary(channel, f"/{REGISTERED}/Ping")(b"", metadata=METADATA)
    [event] = delivered_events(1)
    assert (event.endpoint, event.user_id, event.correlation_id) == (f"/{REGISTERED}/Ping", "alice", "call-7")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_each_kind_of_call_is_recorded_with_the_code_its_client_got(flavour: str) -> None:
    """Every kind of call, ending each way a handler can (returning, aborting, setting a code, raising),
    is recorded with the code the client got, and UNAUTHENTICATED and PERMISSION_DENIED add AUTH_FAILURE
    and ACCESS_DENIED: on a grpc.server, and on an aio server from async and from sync handlers."""
    server_kind, async_handlers = FLAVOURS[flavour]
    recorder = AuditRecorder(AuditMiddlewareConfig(detect_anomalies=False))
    ends = Ends()
    calls = {f"{kind}-{how.decode()}": (kind, how) for kind in CALL_KINDS for how in ENDINGS}
    got = {}
    with capture_events() as events:
        with grpc_server(
            server_kind,
            lambda server: server.add_generic_rpc_handlers((ends.generic(async_handlers),)),
            [interceptor(server_kind, recorder)],
        ) as channel:
            for request_id, (kind, how) in calls.items():
                got[request_id] = client_code(kind, start_call(channel, kind, how, request_id, 10))
        # An aio server's calls are recorded once gRPC has finished them, just after the client's answer.
        wait_for(lambda: recorder.stats.requests == len(calls), 10, "every call to be recorded")
    assert got == {request_id: ENDINGS[how] for request_id, (_, how) in calls.items()}
    for request_id, (_, how) in calls.items():
        [event, *derived] = [event for event in events if event.correlation_id == request_id]
        assert (event.event_type, event.details["grpc_status"]) == ("api_request", got[request_id].name)
        assert event.details.get("exception") == ("RuntimeError" if how == b"raise" else None)
        assert [derived_event.event_type for derived_event in derived] == {
            b"abort-unauthenticated": ["auth_failure"],
            b"abort-permission-denied": ["access_denied"],
        }.get(how, [])


@pytest.fixture(scope="module")
def cut_short() -> subprocess.CompletedProcess[str]:
    """grpc_cut_short.py run once: calls cut short by a deadline or the client, on every flavour."""
    return subprocess.run(
        [sys.executable, "-m", "tests.shipper.middleware.grpc_cut_short"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cut_short_calls(run: subprocess.CompletedProcess[str], flavour: str, how: str) -> list[dict[str, Any]]:
    assert run.returncode == 0, f"exit status {run.returncode}; stderr ends:\n{run.stderr[-3000:]}"
    calls = [json.loads(line) for line in run.stdout.splitlines()]
    return [call for call in calls if call["flavour"] == flavour and call["how"] == how]


def test_handlers_running_past_the_end_of_their_call_leave_the_server_running(
    cut_short: subprocess.CompletedProcess[str],
) -> None:
    """Sync handlers on an aio server that return after their call ended (its deadline passed, or the
    client cancelled it) no longer crash the process, as reading the call's peer then did."""
    assert cut_short.returncode == 0, f"stderr ends:\n{cut_short.stderr[-3000:]}"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_call_whose_deadline_passes_is_recorded_as_deadline_exceeded_with_its_peer(
    flavour: str, cut_short: subprocess.CompletedProcess[str]
) -> None:
    """The client got DEADLINE_EXCEEDED: each kind of call is recorded so (504), with the peer read when
    the call started, whether the handler went on past the deadline or was cancelled by it."""
    calls = cut_short_calls(cut_short, flavour, "outlive-deadline")
    assert sorted(call["kind"] for call in calls) == sorted(CALL_KINDS)
    for call in calls:
        assert (call["client"], call["recorded"]) == ("DEADLINE_EXCEEDED", ["DEADLINE_EXCEEDED"]), call
        [peer] = call["peers"]
        assert peer.startswith("ipv4:127.0.0.1:"), call


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_call_the_client_cancels_is_recorded_as_cancelled(
    flavour: str, cut_short: subprocess.CompletedProcess[str]
) -> None:
    """The client cancelled each kind of call while its handler ran: recorded as CANCELLED (499), even
    when a sync handler returns normally afterwards."""
    calls = cut_short_calls(cut_short, flavour, "await-cancel")
    assert sorted(call["kind"] for call in calls) == sorted(CALL_KINDS)
    for call in calls:
        assert (call["client"], call["recorded"]) == ("CANCELLED", ["CANCELLED"]), call


def test_a_methods_handler_is_wrapped_once_and_again_only_when_it_changes() -> None:
    """The interceptor sees every call; the server hands it the same handler each time, whose wrapper
    is kept. A different handler for the method (a server that swapped it) is wrapped anew."""
    interceptor = AuditServerInterceptor(emit=lambda event: None)

    class Details(grpc.HandlerCallDetails):
        method = f"/{SERVICE}/Unary"
        invocation_metadata = ()

    first = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    wrapped = interceptor.intercept_service(lambda details: first, Details())
    assert wrapped is not None and wrapped is not first
    assert interceptor.intercept_service(lambda details: first, Details()) is wrapped
    second = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    rewrapped = interceptor.intercept_service(lambda details: second, Details())
    assert rewrapped is not wrapped and rewrapped is not None
    assert interceptor.intercept_service(lambda details: None, Details()) is None
