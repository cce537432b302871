"""The kinds of events the rules count and the keys they count them under, each once as a test on a
decoded event (the streaming detector) and once as SQL over the lake's `events` (audit-query anomalies),
side by side so that the two cannot drift apart.

- An authentication failure is an `auth_failure`, or a `user_login` whose outcome is failure. (An API
  call answered 401 is not counted again: the middleware adds an `auth_failure` for it.)
- A data access is a read, access, export, update or delete that succeeded.
- An export's volume is its record count: the first of `details.record_count`, `records`, `rows` and
  `count` that is a number of at least 0; an export that gives none counts 1.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any, NamedTuple

from auditship.agents.detect.observed import Observed

VOLUME_FIELDS = ("record_count", "records", "rows", "count")


class Selection(NamedTuple):
    """Which events a rule counts: the event types they can have (None: any), the test, and the test as
    a SQL condition, with the named parameters it uses (a Sigma rule's values)."""

    types: frozenset[str] | None
    test: Callable[[Observed], bool]
    sql: str
    params: dict[str, Any] = {}  # never changed: the Selections without any share this one


def is_auth_failure(event: Observed) -> bool:
    return event.event_type == "auth_failure" or (
        event.event_type == "user_login" and event.outcome == "failure"
    )


AUTH_FAILURE_SQL = "(event_type = 'auth_failure' OR (event_type = 'user_login' AND outcome = 'failure'))"
AUTH_FAILURES = Selection(frozenset({"auth_failure", "user_login"}), is_auth_failure, AUTH_FAILURE_SQL)
RATE_LIMITS = Selection(
    frozenset({"rate_limit_exceeded"}), lambda _: True, "event_type = 'rate_limit_exceeded'"
)
EXPORTS = Selection(
    frozenset({"data_export"}),
    lambda event: event.outcome not in ("failure", "error"),
    "(event_type = 'data_export' AND outcome NOT IN ('failure', 'error'))",
)
ACCESS_TYPES = frozenset({"data_read", "data_access", "data_export", "data_update", "data_delete"})
DATA_ACCESS = Selection(
    ACCESS_TYPES,
    lambda event: event.outcome == "success",
    f"(event_type IN {tuple(sorted(ACCESS_TYPES))!r} AND outcome = 'success')",
)
RESOURCE_TOUCHES = Selection(None, lambda event: event.resource_id is not None, "resource_id IS NOT NULL")
ACTIVITY = Selection(None, lambda event: not is_auth_failure(event), f"NOT {AUTH_FAILURE_SQL}")
"""What a user does themself: anything but a failed attempt to authenticate as them."""
ANY = Selection(None, lambda _: True, "true")


class Key(NamedTuple):
    """What a rule keeps its state under: the key of an event (None: the event has none, and is not
    counted), the same as SQL, and the key's fields for an alert."""

    of: Callable[[Observed], str | None]
    sql: str
    describe: Callable[[str], dict[str, str]]


# attrgetter rather than a lambda: a key is read for every event a rule takes, and this is faster.
USER = Key(attrgetter("user_id"), "user_id", lambda key: {"user_id": key})
ADDRESS = Key(attrgetter("source_ip"), "source_ip", lambda key: {"source_ip": key})


def _actor(event: Observed) -> str | None:
    if event.source_ip is not None:
        return f"source_ip:{event.source_ip}"
    if event.user_id is not None:
        return f"user_id:{event.user_id}"
    if event.service_name is not None:
        return f"service_name:{event.service_name}"
    return None


def _described(key: str) -> dict[str, str]:
    field, _, value = key.partition(":")
    return {field: value}


ACTOR = Key(
    _actor,
    "CASE WHEN source_ip IS NOT NULL THEN 'source_ip:' || source_ip"
    " WHEN user_id IS NOT NULL THEN 'user_id:' || user_id"
    " WHEN service_name IS NOT NULL THEN 'service_name:' || service_name END",
    _described,
)
"""The address an event came from, else its user, else its service."""


def resource_of(event: Observed) -> str:
    return f"{event.resource_type or ''}:{event.resource_id}"


RESOURCE_SQL = "coalesce(resource_type, '') || ':' || resource_id"


def export_volume(event: Observed) -> float:
    for name in VOLUME_FIELDS:
        value = event.detail(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return 1.0


def _volume_field_sql(name: str) -> str:
    number = f"TRY_CAST(json_extract(details, '$.{name}') AS DOUBLE)"
    # json_extract of a JSON true is `true`, which casts to 1: a bool is no count.
    kind = f"json_type(details, '$.{name}') IN ('UBIGINT', 'BIGINT', 'DOUBLE')"
    return f"CASE WHEN {kind} AND {number} >= 0 THEN {number} END"


EXPORT_VOLUME_SQL = f"coalesce({', '.join(_volume_field_sql(name) for name in VOLUME_FIELDS)}, 1)"


def privilege_subject(event: Observed) -> str | None:
    """Who a privilege change is for: `details.target_user`, else the user or account it changes (its
    resource), else whoever made it."""
    target = event.detail("target_user")
    if isinstance(target, str):
        return target
    if event.resource_type in ("user", "account") and event.resource_id is not None:
        return event.resource_id
    return event.user_id


PRIVILEGE_SUBJECT_SQL = (
    "coalesce(CASE WHEN json_type(details, '$.target_user') = 'VARCHAR'"
    " THEN json_extract_string(details, '$.target_user') END,"
    " CASE WHEN resource_type IN ('user', 'account') THEN resource_id END, user_id)"
)
