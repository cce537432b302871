"""capture_events() collects what loggers without an explicit emit send, instead of sending it."""

import asyncio
import threading

import pytest

from shipper.config import AuditConfig, AuditContext
from shipper.event import AuditEvent, AuditEventType
from shipper.logger import AuditLogger
from shipper.testing import CapturedEvents, capture_events

CONTEXT = AuditContext(service_name="my-service", service_version="1.0.0", environment="production")


def test_the_quick_start_login_is_captured():
    """The seed's quick start, run under capture_events(), yields its login event and sends nothing."""
    config = AuditConfig()
    config.enable_file_logging = True
    config.enable_console_logging = True
    audit_logger = AuditLogger(config, CONTEXT)

    with capture_events() as events:
        asyncio.run(
            audit_logger.log_auth_event(
                AuditEventType.USER_LOGIN, user_id="user123", source_ip="192.168.1.100"
            )
        )

    assert isinstance(events, CapturedEvents)
    [login] = events
    assert login.event_type is AuditEventType.USER_LOGIN
    assert login.user_id == "user123"
    assert login.service_name == "my-service"


def test_loggers_created_inside_or_before_the_block_are_both_captured():
    """A logger made at import time is captured as well as one made inside the block, in order."""
    before = AuditLogger(AuditConfig(), CONTEXT)
    with capture_events() as events:
        inside = AuditLogger(AuditConfig(), CONTEXT)
        asyncio.run(before.log_system_event(AuditEventType.SYSTEM_STARTUP, "first"))
        asyncio.run(inside.log_system_event(AuditEventType.SYSTEM_STARTUP, "second"))
    assert [event.message for event in events] == ["first", "second"]


def test_a_logger_with_its_own_emit_is_not_captured():
    """An explicit emit= is where that logger's events go, capture or not."""
    own: list[AuditEvent] = []
    audit_logger = AuditLogger(AuditConfig(), CONTEXT, emit=own.append)
    with capture_events() as events:
        asyncio.run(audit_logger.log_system_event(AuditEventType.SYSTEM_STARTUP, "started"))
    assert events == []
    assert len(own) == 1


def test_filtered_events_are_not_captured():
    """What the config filters out never reaches the capture; the logger counts it."""
    audit_logger = AuditLogger(AuditConfig(excluded_event_types=[AuditEventType.HEARTBEAT]), CONTEXT)
    with capture_events() as events:
        asyncio.run(audit_logger.log_system_event(AuditEventType.HEARTBEAT, "alive"))
    assert events == []
    assert audit_logger.filtered == 1


def test_of_type_selects_events_by_type_in_order():
    """events.of_type(...) keeps the captured events of the given types, oldest first."""
    audit_logger = AuditLogger(AuditConfig(), CONTEXT)

    async def scenario() -> None:
        await audit_logger.log_auth_event(AuditEventType.USER_LOGIN, user_id="a")
        await audit_logger.log_api_event("GET", "/", 200)
        await audit_logger.log_auth_event(AuditEventType.USER_LOGOUT, user_id="a")

    with capture_events() as events:
        asyncio.run(scenario())
    assert len(events) == 3
    assert [e.event_type for e in events.of_type(AuditEventType.USER_LOGIN, AuditEventType.USER_LOGOUT)] == [
        AuditEventType.USER_LOGIN,
        AuditEventType.USER_LOGOUT,
    ]
    assert events.of_type(AuditEventType.DATA_DELETE) == []


def test_the_innermost_capture_receives_and_the_outer_resumes_after_it():
    """Nested captures: events go to the innermost; when it ends, the outer one receives again."""
    audit_logger = AuditLogger(AuditConfig(), CONTEXT)
    with capture_events() as outer:
        asyncio.run(audit_logger.log_system_event(AuditEventType.WORKFLOW, "outer-1"))
        with capture_events() as inner:
            asyncio.run(audit_logger.log_system_event(AuditEventType.WORKFLOW, "inner"))
        asyncio.run(audit_logger.log_system_event(AuditEventType.WORKFLOW, "outer-2"))
    assert [e.message for e in inner] == ["inner"]
    assert [e.message for e in outer] == ["outer-1", "outer-2"]


def test_the_capture_ends_even_when_the_block_raises():
    """After an exception in the block, a new capture starts clean and the old one stays as it was."""
    audit_logger = AuditLogger(AuditConfig(), CONTEXT)
    with pytest.raises(RuntimeError), capture_events() as failed:
        raise RuntimeError("test failed")
    with capture_events() as events:
        asyncio.run(audit_logger.log_system_event(AuditEventType.WORKFLOW, "later"))
    assert failed == []
    assert len(events) == 1


def test_events_from_other_threads_are_captured():
    """Loggers used from worker threads are captured too, none lost."""
    audit_logger = AuditLogger(AuditConfig(), CONTEXT)

    def work() -> None:
        for _ in range(500):
            asyncio.run(audit_logger.log_system_event(AuditEventType.WORKFLOW, "step"))

    with capture_events() as events:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(events) == 2000
