"""Naming the authenticated user of the request in progress, for its audit event.

    from shipper import set_audit_user

    set_audit_user(user.id)  # in a dependency, a handler, anything the request runs

    # FastAPI: wrap the app's own current-user dependency
    CurrentUser = Annotated[User, Depends(audit_user_from(get_current_user))]

FastAPI apps authenticate in dependencies, not in `scope["user"]`, so the middleware cannot find the
user by itself. A ContextVar set inside a dependency would not tell it either: FastAPI runs a sync
dependency in a thread, with a copy of the request's context, and what the thread sets there is lost
when it returns. So the middleware gives each request one mutable `UserSlot`, and `set_audit_user`
fills it: the thread's copy of the context holds that same slot, as does the request's task and any
task it starts.

The slot travels with the request's correlation ids (`RequestIds`), which the middleware puts in effect
for every request anyway: a ContextVar of its own would cost each request about 3.5k instructions to
set and reset, more than the rest of this feature. A nested `correlation()` block keeps the slot. Outside
a request or gRPC call audited by the middleware, `set_audit_user` does nothing.

Imports neither Starlette nor FastAPI: `audit_user_from` imports FastAPI when called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from shipper.correlation import CorrelationIds, current


class UserSlot:
    """Where the user id of one request is put while it is handled."""

    # A class default, no __init__: most requests never set it, and a Python __init__ would cost each
    # request a call.
    user_id: str | None = None


class RequestIds(CorrelationIds):
    """The correlation ids of a request audited by the middleware, carrying its `user_slot` (in the
    instance's dict: it is no field, so the ids compare and unpack as any CorrelationIds)."""

    user_slot: UserSlot

    def _replace(self, /, **changes: Any) -> RequestIds:
        replaced: RequestIds = super()._replace(**changes)
        replaced.user_slot = self.user_slot
        return replaced


_new_tuple = tuple.__new__


def request_ids(ids: CorrelationIds | None, event_id: str, slot: UserSlot) -> RequestIds:
    """`ids` (None: `event_id` as correlation and request id) carrying `slot`."""
    # tuple.__new__ directly: the NamedTuple's own __new__ is a Python function, a call more.
    carried: RequestIds = _new_tuple(RequestIds, (event_id, event_id, None, None) if ids is None else ids)
    carried.user_slot = slot
    return carried


def set_audit_user(user_id: object) -> bool:
    """Name the authenticated user of the request in progress: its event's `user_id` is `str(user_id)`
    (None takes it back). It wins over `user_resolver` and `scope["user"]`. Returns whether a request
    audited by the middleware is in progress here (if not, nothing is set)."""
    slot: UserSlot | None = getattr(current(), "user_slot", None)
    if slot is None:
        return False
    slot.user_id = None if user_id is None else str(user_id)
    return True


def user_id_of(user: object) -> object:
    """What `audit_user_from` names by default: a string or number itself, else the user's `id`, else its
    `username`, else its `identity` (Starlette's users); None when it has none of them."""
    if user is None or isinstance(user, str | int | UUID):
        return user
    for attribute in ("id", "username", "identity"):
        value = getattr(user, attribute, None)
        if value is not None:
            return value
    return None


def audit_user_from(
    dependency: Callable[..., Any], id_of: Callable[[Any], object] = user_id_of
) -> Callable[..., Any]:
    """A FastAPI dependency that returns what `dependency` (the app's current-user dependency, sync or
    async) returns, and names that user for the request's audit event: `id_of(user)`, by default its
    `id` or `username` (see `user_id_of`). Use it where the original was used:
    `Depends(audit_user_from(get_current_user))`, or in `Security(..., scopes=[...])`, whose scopes reach
    the original. FastAPI caches dependencies per request, so the original runs once even when other
    parameters depend on it directly."""
    from fastapi import Depends

    # A default, not Annotated: annotations here are strings, resolved where `dependency` is unknown.
    async def audited_user(user: Any = Depends(dependency)) -> Any:  # noqa: B008 - FastAPI's idiom
        set_audit_user(id_of(user))
        return user

    return audited_user
