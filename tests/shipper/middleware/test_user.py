"""Naming the request's user for its event the way FastAPI apps authenticate: in dependencies (sync ones
run in a threadpool, async ones in the request's task), with `audit_user_from` around the app's own
current-user dependency or `set_audit_user` called anywhere the request runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import OAuth2PasswordBearer

from shipper.correlation import correlation
from shipper.event import AuditEventType
from shipper.middleware.asgi import setup_fastapi_audit_middleware
from shipper.middleware.config import AuditMiddlewareConfig
from shipper.middleware.user import audit_user_from, set_audit_user, user_id_of
from shipper.testing import capture_events


@dataclass
class User:
    id: int
    username: str
    hashed_password: str = "$2b$12$not-for-the-trail"


USERS = {"t-alice": User(17, "alice"), "t-bob": User(23, "bob")}
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")


def authenticated(token: str) -> User:
    user = USERS.get(token)
    if user is None:
        raise HTTPException(401, "Could not validate credentials", headers={"WWW-Authenticate": "Bearer"})
    return user


def get_current_user(token: Annotated[str, Depends(oauth2_scheme)]) -> User:
    """FastAPI's tutorial dependency, sync: FastAPI runs it in a worker thread."""
    return authenticated(token)


async def get_current_user_async(token: Annotated[str, Depends(oauth2_scheme)]) -> User:
    return authenticated(token)


def get_current_user_naming_itself(token: Annotated[str, Depends(oauth2_scheme)]) -> User:
    user = authenticated(token)
    set_audit_user(user.username)
    return user


CurrentUser = Annotated[User, Depends(audit_user_from(get_current_user))]
CurrentUserAsync = Annotated[User, Depends(audit_user_from(get_current_user_async))]
CurrentUserNamed = Annotated[User, Depends(get_current_user_naming_itself)]
CurrentUserByName = Annotated[User, Depends(audit_user_from(get_current_user, id_of=lambda u: u.username))]


def secured_app() -> FastAPI:
    app = FastAPI()

    @app.get("/sync/me")
    async def me_sync(user: CurrentUser) -> dict[str, str]:
        return {"name": user.username}

    @app.get("/async/me")
    async def me_async(user: CurrentUserAsync) -> dict[str, str]:
        return {"name": user.username}

    @app.get("/named/me")
    def me_named(user: CurrentUserNamed) -> dict[str, str]:
        return {"name": user.username}

    @app.get("/by-name/me")
    async def me_by_name(user: CurrentUserByName) -> dict[str, str]:
        return {"name": user.username}

    @app.post("/jobs")
    def start_job() -> dict[str, str]:
        # A handler acting for someone the app knows without a dependency (a sync handler: a thread).
        set_audit_user("batch-scheduler")
        return {"job": "started"}

    @app.post("/imports")
    async def run_import() -> dict[str, str]:
        with correlation(span_id="00f067aa0ba902b7"):  # a block of the app's own, inside the request
            set_audit_user("importer")
        return {"import": "done"}

    @app.get("/public")
    async def public() -> dict[str, bool]:
        return {"public": True}

    setup_fastapi_audit_middleware(app, AuditMiddlewareConfig(detect_anomalies=False))
    return app


def users_of(requests: list[tuple[str, str, str | None]]) -> list[tuple[str, int, str | None]]:
    """(path, status, user_id) of the API_REQUEST event of each (method, path, token) request."""
    app = secured_app()

    async def call() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
            for method, path, token in requests:
                headers = {"authorization": f"Bearer {token}"} if token else {}
                await client.request(method, path, headers=headers)

    with capture_events() as events:
        asyncio.run(call())
    return [
        (e.details["path"], e.status_code or 0, e.user_id) for e in events.of_type(AuditEventType.API_REQUEST)
    ]


def test_the_apps_own_current_user_dependency_wrapped_names_the_user_sync_or_async() -> None:
    """audit_user_from(get_current_user) names the user by id, whether the original dependency is sync
    (run in a thread) or async; id_of picks another attribute."""
    assert users_of(
        [
            ("GET", "/sync/me", "t-alice"),
            ("GET", "/async/me", "t-bob"),
            ("GET", "/by-name/me", "t-alice"),
        ]
    ) == [("/sync/me", 200, "17"), ("/async/me", 200, "23"), ("/by-name/me", 200, "alice")]


def test_set_audit_user_in_a_sync_dependency_or_a_handler_reaches_the_event() -> None:
    """A sync dependency calling set_audit_user (in FastAPI's threadpool), a sync handler, and an async
    one inside a correlation() block of its own all name the request's user."""
    assert users_of([("GET", "/named/me", "t-bob"), ("POST", "/jobs", None), ("POST", "/imports", None)]) == [
        ("/named/me", 200, "bob"),
        ("/jobs", 200, "batch-scheduler"),
        ("/imports", 200, "importer"),
    ]


def test_requests_that_name_nobody_have_no_user_and_users_do_not_leak_between_requests() -> None:
    """A refused token and a public endpoint have no user, even right after an authenticated request."""
    assert users_of(
        [
            ("GET", "/sync/me", "t-alice"),
            ("GET", "/sync/me", "t-mallory"),
            ("GET", "/public", None),
        ]
    ) == [("/sync/me", 200, "17"), ("/sync/me", 401, None), ("/public", 200, None)]


def test_outside_an_audited_request_set_audit_user_does_nothing() -> None:
    """It says so by returning False, and raises nothing."""
    assert set_audit_user("alice") is False


def test_the_default_id_of_a_user_is_its_id_else_its_username_never_its_repr() -> None:
    """Strings and numbers are ids themselves; an object without id, username or identity has none (its
    repr may carry a password hash)."""
    assert user_id_of(User(5, "eve")) == 5
    assert user_id_of("carol") == "carol"
    assert user_id_of(object()) is None
