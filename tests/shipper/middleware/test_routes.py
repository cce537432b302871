"""Route templates come from the app's router tree on every supported Starlette and FastAPI version:
included routers' prefixes (nested, with parameters, the same router twice), mounted apps (Starlette,
FastAPI, StaticFiles, a bare ASGI app), hosts, and what older Starlette leaves in the scope (an
endpoint, no route). Apps called through httpx's ASGI transport, events collected by capture_events()."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Host, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from shipper.middleware.asgi import AuditMiddleware, setup_fastapi_audit_middleware
from shipper.middleware.config import AuditMiddlewareConfig
from shipper.testing import capture_events
from tests.shipper.middleware.apps import raw_files


def endpoints(app: object, requests: list[tuple[str, str]]) -> list[tuple[str, int, str]]:
    """(path, status, endpoint) of each request's API_REQUEST event, `requests` made in order."""

    async def call() -> None:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
            for method, path in requests:
                await client.request(method, path)

    with capture_events() as events:
        asyncio.run(call())
    return [(e.details["path"], e.status_code or 0, e.endpoint or "") for e in events]


async def text(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.fixture
def static_dir(tmp_path: Path) -> Path:
    (tmp_path / "logo.txt").write_text("logo")
    return tmp_path


def fastapi_with_routers(static_dir: Path) -> FastAPI:
    """Routers included with prefixes three deep, one router included twice, and mounted apps."""
    app = FastAPI()
    items = APIRouter(prefix="/items")

    @items.get("/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    v1 = APIRouter(prefix="/v1")
    v1.include_router(items)
    api = APIRouter()
    api.include_router(v1, prefix="/api")
    app.include_router(api)

    reports = APIRouter()

    @reports.get("/reports/{report_id}")
    async def get_report(report_id: str) -> dict[str, str]:
        return {"report": report_id}

    app.include_router(reports, prefix="/tenants/{tenant}")
    app.include_router(reports, prefix="/archive")

    @app.get("/top/{name}")
    async def top(name: str) -> dict[str, str]:
        return {"name": name}

    sub = FastAPI()

    @sub.get("/orders/{order_id}")
    async def order(order_id: str) -> dict[str, str]:
        return {"order": order_id}

    app.mount("/shop", sub)
    app.mount("/legacy/{tenant}", Starlette(routes=[Mount("/v0", routes=[Route("/pages/{page}", text)])]))
    app.mount("/static", StaticFiles(directory=static_dir))
    setup_fastapi_audit_middleware(app, AuditMiddlewareConfig(detect_anomalies=False))
    return app


def test_fastapi_templates_carry_every_include_prefix_and_mount(static_dir: Path) -> None:
    """Nested includes keep their outer prefixes, a router included twice gets the prefix of the include
    the request went through (parameters as templates), mounted apps have the mount in front, and a
    mounted StaticFiles is one endpoint: never the raw path of a request that matched a route."""
    app = fastapi_with_routers(static_dir)
    assert endpoints(
        app,
        [
            ("GET", "/api/v1/items/42"),
            ("GET", "/tenants/acme/reports/7"),
            ("GET", "/archive/reports/8"),
            ("GET", "/top/x"),
            ("GET", "/shop/orders/9"),
            ("GET", "/legacy/acme/v0/pages/3"),
            ("GET", "/static/logo.txt"),
            ("GET", "/docs"),
        ],
    ) == [
        ("/api/v1/items/42", 200, "/api/v1/items/{item_id}"),
        ("/tenants/acme/reports/7", 200, "/tenants/{tenant}/reports/{report_id}"),
        ("/archive/reports/8", 200, "/archive/reports/{report_id}"),
        ("/top/x", 200, "/top/{name}"),
        ("/shop/orders/9", 200, "/shop/orders/{order_id}"),
        ("/legacy/acme/v0/pages/3", 200, "/legacy/{tenant}/v0/pages/{page}"),
        ("/static/logo.txt", 200, "/static/{path:path}"),
        ("/docs", 200, "/docs"),
    ]


def test_fastapi_refusals_name_the_route_and_unmatched_paths_stay_paths(static_dir: Path) -> None:
    """A 422 and a 405 are reported under the route they reached; a missing file under its mount; a path
    no route matched is its own endpoint."""
    app = fastapi_with_routers(static_dir)
    assert endpoints(
        app,
        [
            ("GET", "/api/v1/items/not-a-number"),
            ("POST", "/tenants/acme/reports/7"),
            ("GET", "/static/missing.txt"),
            ("GET", "/nowhere/1"),
        ],
    ) == [
        ("/api/v1/items/not-a-number", 422, "/api/v1/items/{item_id}"),
        ("/tenants/acme/reports/7", 405, "/tenants/{tenant}/reports/{report_id}"),
        ("/static/missing.txt", 404, "/static/{path:path}"),
        ("/nowhere/1", 404, "/nowhere/1"),
    ]


def test_starlette_templates_through_mounts_hosts_and_one_endpoint_behind_two_routes() -> None:
    """A plain Starlette app (below 1.7 it sets no scope["route"]): mounted routers, a host, a bare ASGI
    app and one endpoint served at two paths each get their own template."""
    routes = [
        Route("/users/{user_id:int}", text),
        Route("/people/{user_id:int}", text),
        Mount("/admin/{tenant}", routes=[Mount("/v2", app=Router(routes=[Route("/audit/{entry}", text)]))]),
        Mount("/files", app=raw_files),
        Host("api.example.org", app=Router(routes=[Route("/hosted/{thing}", text)])),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(AuditMiddleware)])
    seen = endpoints(
        app,
        [
            ("GET", "/users/5"),
            ("GET", "/people/6"),
            ("GET", "/admin/acme/v2/audit/77"),
            ("GET", "/files/a/b.txt"),
            ("GET", "http://api.example.org/hosted/lamp"),
            ("GET", "/users/not-a-number"),
        ],
    )
    assert seen == [
        ("/users/5", 200, "/users/{user_id:int}"),
        ("/people/6", 200, "/people/{user_id:int}"),
        ("/admin/acme/v2/audit/77", 200, "/admin/{tenant}/v2/audit/{entry}"),
        ("/files/a/b.txt", 200, "/files/{path:path}"),
        ("/hosted/lamp", 200, "/hosted/{thing}"),
        ("/users/not-a-number", 404, "/users/not-a-number"),
    ]
