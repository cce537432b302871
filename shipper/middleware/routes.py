"""Route templates: the path pattern of the route a request matched, with whatever leads to it in front
(`/api/v1/items/{item_id}`, `/legacy/{tenant}/items/{item_id}`), on every Starlette and FastAPI version
the package supports.

What the router leaves in the scope differs by version: Starlette 1.7 and later, and FastAPI, set
`scope["route"]`, but from FastAPI 0.137 a route of a router included with `include_router(prefix=...)`
is the router's own, without the prefixes of the includes above it, and from 0.138 a mounted app that is
not a router (StaticFiles) sets none; Starlette before 1.7 sets only `scope["endpoint"]`. So the
template is computed from the app's router tree (`scope["router"]`), through Starlette mounts and hosts
and FastAPI's included routers, each adding its prefix:

1. the place in the tree of `scope["route"]`, else of `scope["endpoint"]`, when it is in one place only
   (searched once per route or endpoint, then cached);
2. else (the same router included twice, one endpoint behind two routes, neither key set) the tree is
   walked as the router walks it, each route's own `matches()` given the request's path;
3. else the matched route's own path, prefixes missing: never the raw path when a route matched.

A request that matched no route has no template (None): the caller reports its path.
"""

from __future__ import annotations

import re
from functools import lru_cache

from starlette.routing import BaseRoute, Match, Mount, compile_path
from starlette.types import Scope

# Cached per route or endpoint object; an app that builds routes at run time could make the cache grow
# without end, so it starts again past this size.
_MAX_CACHED = 4096
# Mounts and included routers are followed this deep.
_MAX_DEPTH = 8

Branch = tuple[str, list[BaseRoute]]


def _own_path(route: BaseRoute) -> str | None:
    path = getattr(route, "path", None)
    if isinstance(route, Mount):
        # A mounted app that is not a router (or none of whose routes matched): everything below the
        # mount is one endpoint.
        return f"{path}/{{path:path}}"
    return path if isinstance(path, str) else None


def _included(route: BaseRoute) -> Branch | None:
    """FastAPI 0.137+: a router included with `include_router` is one entry of its parent's routes that
    keeps the included router's routes as they are; its prefix is added when the request is routed."""
    router = getattr(route, "original_router", None)
    prefix = getattr(getattr(route, "include_context", None), "prefix", None)
    if router is None or not isinstance(prefix, str):
        return None
    return prefix, router.routes


def _branch(route: BaseRoute) -> Branch | None:
    """The prefix and routes below a mount, a host or an included router; None for any other route."""
    included = _included(route)
    if included is not None:
        return included
    children = getattr(route, "routes", None)
    if not children:
        return None
    path = getattr(route, "path", "")  # a Host has none
    return (path if isinstance(path, str) else ""), children


def _places(routes: list[BaseRoute], key: object, prefix: str, depth: int, found: list[str]) -> None:
    """Append the template of every place in the tree where `key` is a route, a route's endpoint or a
    mount's app (what Starlette puts in `scope["endpoint"]`)."""
    for route in routes:
        if (
            route is key
            or getattr(route, "endpoint", None) is key
            or (isinstance(route, Mount) and route.app is key)
        ):
            path = _own_path(route)
            if path is not None:
                found.append(prefix + path)
        branch = _branch(route)
        if branch is not None and depth < _MAX_DEPTH:
            _places(branch[1], key, prefix + branch[0], depth + 1, found)


def _route_path(path: str, root_path: str) -> str:
    """The path below `root_path`, as Starlette's routes read it."""
    if root_path and path.startswith(root_path) and path[len(root_path) : len(root_path) + 1] in ("", "/"):
        return path[len(root_path) :]
    return path


@lru_cache(maxsize=256)
def _prefix_pattern(prefix: str) -> re.Pattern[str]:
    # What an included router's routes see of the path: the rest after the prefix (its parameters too).
    return compile_path(prefix + "{auditship_rest:path}")[0]


def _walk(routes: list[BaseRoute], scope: Scope, prefix: str, depth: int) -> tuple[Match, str | None]:
    """Route `scope` as the router would, without handling it: the first full match's template, else the
    first partial one's (a 405)."""
    partial: str | None = None
    for route in routes:
        included = _included(route)
        if included is not None:
            if depth >= _MAX_DEPTH:
                continue
            route_path = _route_path(scope["path"], scope["root_path"])
            found = _prefix_pattern(included[0]).match(route_path)
            rest = found["auditship_rest"] if found else ""
            if not rest.startswith("/"):
                continue
            inner = {**scope, "root_path": scope["root_path"] + route_path[: len(route_path) - len(rest)]}
            match, template = _walk(included[1], inner, prefix + included[0], depth + 1)
        else:
            match, child = route.matches(scope)
            if match is Match.NONE:
                continue
            branch = _branch(route)
            if branch is not None and depth < _MAX_DEPTH:
                # The router below a mount or a host takes the request whether a route of its matches or
                # not; when none does, the mount itself is the endpoint, as when it is scope["route"].
                inner = {**scope, **child}
                template = _walk(branch[1], inner, prefix + branch[0], depth + 1)[1]
                if template is not None:
                    return Match.FULL, template
            own = _own_path(route)
            template = prefix + own if own is not None else None
        if match is Match.FULL:
            return match, template
        if match is Match.PARTIAL and partial is None:
            partial = template
    return (Match.PARTIAL, partial) if partial is not None else (Match.NONE, None)


class RouteTemplates:
    """The route templates of one app's requests, cached by route and endpoint."""

    def __init__(self) -> None:
        self._places: dict[int, tuple[object, tuple[str, ...]]] = {}

    def template(self, scope: Scope, path: str, root_path: str) -> str | None:
        """The template of the route `scope` was routed to (`path` and `root_path` as they were before
        routing changed the scope); None when no route matched."""
        route = scope.get("route")
        if route is not None:  # what nearly every request of a recent Starlette or FastAPI finds
            cached = self._places.get(id(route))
            if cached is not None and cached[0] is route and len(cached[1]) == 1:
                return cached[1][0]
        routes = getattr(scope.get("router"), "routes", None)
        if not routes:
            return _own_path(route) if route is not None else None
        for key in (route, scope.get("endpoint")):
            if key is not None:
                places = self._where(key, routes)
                if len(places) == 1:
                    return places[0]
        probe: Scope = {
            "type": scope.get("type"),
            "path": path,
            "root_path": root_path,
            "method": scope.get("method"),
            "headers": scope.get("headers") or [],
            "path_params": {},
        }
        template = _walk(routes, probe, "", 0)[1]
        if template is None and route is not None:
            template = _own_path(route)
        return template

    def _where(self, key: object, routes: list[BaseRoute]) -> tuple[str, ...]:
        cached = self._places.get(id(key))
        if cached is not None and cached[0] is key:
            return cached[1]
        found: list[str] = []
        _places(routes, key, "", 0, found)
        if len(self._places) >= _MAX_CACHED:
            self._places.clear()
        places = tuple(dict.fromkeys(found))
        self._places[id(key)] = (key, places)
        return places
