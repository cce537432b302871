"""Events as OCSF: the class of each event type, type_uid, and nothing of the event lost."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from auditship.agents.crypto import Keyring
from auditship.agents.sinks.siem.ocsf import encode_ocsf
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity, Sender
from tests.agents.sinks.entries import SECRET, entries

T = AuditEventType


def ocsf(event_type: AuditEventType, **fields: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = msgspec.json.decode(encode_ocsf(AuditEvent(event_type=event_type, **fields)))
    return decoded


@pytest.mark.parametrize(
    ("event_type", "fields", "class_uid", "activity_id"),
    [
        (T.USER_LOGIN, {}, 3002, 1),
        (T.USER_LOGOUT, {}, 3002, 2),
        (T.AUTH_SUCCESS, {}, 3002, 1),
        (T.AUTH_FAILURE, {}, 3002, 1),
        (T.DATA_CREATE, {"resource_type": "user"}, 3001, 1),
        (T.DATA_DELETE, {"resource_type": "account"}, 3001, 6),
        (T.DATA_UPDATE, {"resource_type": "user"}, 3001, 99),
        (T.API_REQUEST, {"method": "GET"}, 6003, 2),
        (T.API_REQUEST, {"method": "POST"}, 6003, 1),
        (T.API_RESPONSE, {"method": "PATCH"}, 6003, 3),
        (T.API_RESPONSE, {"method": "DELETE"}, 6003, 4),
        (T.API_REQUEST, {"method": "OPTIONS"}, 6003, 99),
        (T.DATA_READ, {"resource_type": "document"}, 6001, 2),
        (T.DATA_EXPORT, {}, 6001, 7),
        (T.ACCESS_GRANTED, {}, 6004, 1),
        (T.ACCESS_DENIED, {}, 6004, 2),
        (T.PERMISSION_CHECK, {"outcome": AuditOutcome.FAILURE}, 6004, 2),
        (T.SYSTEM_STARTUP, {}, 6002, 3),
        (T.SYSTEM_SHUTDOWN, {}, 6002, 4),
        (T.CONFIGURATION_CHANGE, {}, 3004, 3),
        (T.SUSPICIOUS_ACTIVITY, {}, 2004, 1),
        (T.COMPLIANCE_CHECK, {"compliance": ["SOX"]}, 2003, 1),
        (T.TRANSACTION, {}, 6003, 99),
    ],
)
def test_each_event_type_has_its_class_and_activity_and_type_uid_follows(
    event_type: AuditEventType, fields: dict[str, Any], class_uid: int, activity_id: int
) -> None:
    record = ocsf(event_type, **fields)
    assert (record["class_uid"], record["activity_id"]) == (class_uid, activity_id)
    assert record["type_uid"] == class_uid * 100 + activity_id
    assert record["category_uid"] == class_uid // 1000


@pytest.mark.parametrize("event_type", list(AuditEventType))
def test_every_event_type_maps_to_a_class_with_the_common_fields(event_type: AuditEventType) -> None:
    record = ocsf(event_type, severity=AuditSeverity.HIGH)
    for key in ("class_uid", "category_uid", "activity_id", "type_uid", "time", "severity_id", "metadata"):
        assert key in record, key
    assert record["severity_id"] == 4
    assert record["metadata"]["version"] == "1.3.0"


def test_an_authentication_failure_says_failure_whatever_the_outcome_field() -> None:
    record = ocsf(T.AUTH_FAILURE, user_id="alice", source_ip="10.0.0.1")
    assert (record["status_id"], record["status"]) == (2, "Failure")
    assert record["user"] == {"uid": "alice"}
    assert record["src_endpoint"] == {"ip": "10.0.0.1"}


def test_an_account_change_names_the_account_changed_and_the_actor_who_changed_it() -> None:
    record = ocsf(T.DATA_DELETE, resource_type="user", resource_id="bob", user_id="admin")
    assert record["user"] == {"uid": "bob"}
    assert record["actor"]["user"] == {"uid": "admin"}


def test_api_activity_carries_the_request() -> None:
    record = ocsf(T.API_REQUEST, method="POST", endpoint="/v1/payments", status_code=201, request_id="r-1")
    assert record["api"]["operation"] == "POST /v1/payments"
    assert record["http_request"] == {"http_method": "POST", "url": {"path": "/v1/payments"}, "uid": "r-1"}
    assert record["http_response"] == {"code": 201}


def test_what_ocsf_has_no_field_for_is_kept_verbatim_in_unmapped(keyring: Keyring) -> None:
    """details (nulls included), changes and the still-encrypted sensitive values all travel."""
    event = entries(range(1), keyring, details={"n": 0, "note": None}, sensitive={"ssn": SECRET})[0].event
    record: dict[str, Any] = msgspec.json.decode(encode_ocsf(event))
    unmapped = record["unmapped"]
    assert unmapped["details"] == {"n": 0, "note": None}
    assert unmapped["sensitive"]["ssn"].startswith("aesgcm2:")
    assert SECRET.encode() not in encode_ocsf(event)
    assert record["metadata"]["uid"] == event.event_id


def test_the_sender_the_agent_stamped_is_the_actors_process() -> None:
    sender = Sender(uid=1001, gid=1001, pid=4242, user="payments", executable="/usr/bin/python3.11")
    record = ocsf(AuditEventType.DATA_READ, sender=sender)
    assert record["actor"]["process"] == {
        "pid": 4242,
        "user": {"uid": "1001", "name": "payments"},
        "file": {"path": "/usr/bin/python3.11"},
    }
    assert "process" not in ocsf(AuditEventType.DATA_READ, service_name="svc")["actor"]
