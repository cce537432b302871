"""Naming the authenticated user of the request in progress, for its audit event.

    from shipper import set_audit_user

    set_audit_user(user.id)  # in a dependency, a handler, anything the request runs

    # FastAPI: wrap the app's own current-user dependency
    CurrentUser = Annotated[User, Depends(audit_user_from(get_current_user))]

FastAPI apps authenticate in dependencies, not in `scope["user"]`, so the middleware cannot find the
user by itself. The middleware puts a slot for the request's user in a ContextVar; `set_audit_user`
fills it. A ContextVar set inside a dependency would not do: FastAPI runs a sync dependency in a
thread, with a copy of the request's context, and what it sets there is lost when the thread returns.
The slot is one object that the copy shares, so a value set in that thread, in the request's task or
in a task it started reaches the request's event. Outside a request audited by the middleware,
`set_audit_user` does nothing.

Imports neither Starlette nor FastAPI: `audit_user_from` imports FastAPI when called.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any
from uuid import UUID


class UserSlot:
    """Where the user id of one request is put while it is handled."""

    __slots__ = ("audit_user",)

    def __init__(self) -> None:
        self.audit_user: str | None = None


# The slot of the request in progress: the middleware sets it for each request and resets it after.
USER_SLOT: ContextVar[UserSlot | None] = ContextVar("auditship_user_slot", default=None)


def set_audit_user(user_id: object) -> bool:
    """Name the authenticated user of the request in progress: its event's `user_id` is `str(user_id)`
    (None takes it back). It wins over `user_resolver` and `scope["user"]`. Returns whether a request
    audited by the middleware is in progress here (if not, nothing is set)."""
    slot = USER_SLOT.get()
    if slot is None:
        return False
    slot.audit_user = None if user_id is None else str(user_id)
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
