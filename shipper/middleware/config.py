"""`AuditMiddlewareConfig`: what the HTTP middleware and the gRPC interceptors record.

    config = AuditMiddlewareConfig()
    config.log_headers = True
    config.exclude_paths = ["/health", "/metrics"]
    config.sample_rate = 0.1
    setup_fastapi_audit_middleware(app, config)

It keeps the seed's names and its set-one-attribute-at-a-time style. The class has slots, so a
misspelt attribute (`config.log_header = True`) raises AttributeError instead of being ignored.
A middleware or interceptor reads the config once, when it is built, through `compile_config`,
which raises ValueError naming the option for any value it cannot use; later changes to the object
do not reach a middleware that exists.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Never logged in clear, whatever the configuration adds: they carry credentials.
ALWAYS_REDACTED = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})

# RFC 9110 token characters: what a header name (and a gRPC metadata key) may be.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(slots=True, kw_only=True)
class AuditMiddlewareConfig:
    """What to record for each HTTP request and gRPC call; see docs/middleware.md for each option."""

    # The API_REQUEST event of each request (False: only the derived security events are sent).
    log_requests: bool = True
    # With log_headers or log_body: record the response's headers or body as well as the request's.
    log_responses: bool = True
    # Request (and response) headers, or gRPC metadata, in `details`; credentials redacted.
    log_headers: bool = False
    # Header or metadata names redacted in addition to ALWAYS_REDACTED and the credential-like names
    # (shipper.middleware.redaction.CREDENTIAL_NAME), case-insensitive.
    redact_headers: list[str] = field(default_factory=list)
    # The first `max_body_size` bytes of bodies, in the event's `sensitive` map (encrypted by the agent).
    log_body: bool = False
    max_body_size: int = 1024
    # Requests whose path is one of these or below one ("/health" covers "/health/live") are not audited.
    exclude_paths: list[str] = field(default_factory=list)
    # A request slower than this also yields a slow-request event; None turns that off.
    slow_request_threshold_ms: float | None = 1000.0
    # In-process signals: bursts of authentication failures from one address, traversal- and
    # injection-shaped paths. Each raises a SUSPICIOUS_ACTIVITY event.
    detect_anomalies: bool = True
    auth_failure_threshold: int = 10
    auth_failure_window_s: float = 60.0
    # Fraction of ordinary request events kept; security-relevant ones are always kept. Drops are counted.
    sample_rate: float = 1.0
    # Addresses or networks of proxies whose X-Forwarded-For is believed, e.g. ["10.0.0.0/8"].
    trusted_proxies: list[str] = field(default_factory=list)
    # Where the correlation id is read from and returned in (W3C traceparent is read as well).
    request_id_header: str = "x-request-id"
    # Whether a websocket handshake's response (its accept, or a refusal) carries that header too.
    websocket_request_id_header: bool = True
    # HTTP: the user id of a request, given the ASGI scope; None reads scope["user"] (Starlette auth).
    # A user named with shipper.set_audit_user during the request wins over either.
    user_resolver: Callable[[MutableMapping[str, Any]], str | None] | None = None
    # gRPC: the user id of a call, given its ServicerContext (e.g. from auth_context() under mTLS); None:
    # only what set_audit_user names. Never caller metadata by default: any caller can set that
    # (shipper.middleware.grpc_server.metadata_user reads `x-user-id`, for use behind a gateway that does).
    grpc_user_resolver: Callable[[Any], str | None] | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """A checked, precomputed copy of an AuditMiddlewareConfig: what the hot path reads."""

    log_requests: bool
    log_responses: bool
    log_headers: bool
    redacted: frozenset[str]
    body_limit: int  # 0: bodies are not logged
    exclude_paths: tuple[str, ...]
    slow_ms: float  # math.inf: no slow-request events
    detect_anomalies: bool
    auth_failure_threshold: int
    auth_failure_window_s: float
    sample_rate: float
    trusted_proxies: tuple[Network, ...]
    request_id_header: str
    websocket_request_id_header: bool
    user_resolver: Callable[[MutableMapping[str, Any]], str | None] | None
    grpc_user_resolver: Callable[[Any], str | None] | None


def _fail(option: str, expected: str, value: object) -> ValueError:
    return ValueError(f"AuditMiddlewareConfig.{option}: expected {expected}, got {value!r}")


def _flag(config: AuditMiddlewareConfig, option: str) -> bool:
    value = getattr(config, option)
    if not isinstance(value, bool):
        raise _fail(option, "True or False", value)
    return value


def _positive(option: str, value: Any, *, integer: bool = False) -> Any:
    kinds = int if integer else int | float
    # bool is an int subclass, and True is not a threshold anybody meant.
    if isinstance(value, bool) or not isinstance(value, kinds) or not (math.isfinite(value) and value > 0):
        raise _fail(option, "a positive integer" if integer else "a positive number", value)
    return value


def _header_names(option: str, names: object) -> frozenset[str]:
    if not isinstance(names, list | tuple) or not all(
        isinstance(name, str) and _HEADER_NAME.fullmatch(name) for name in names
    ):
        raise _fail(option, "a list of header names", names)
    return frozenset(name.lower() for name in names)


def _paths(option: str, paths: object) -> tuple[str, ...]:
    if not isinstance(paths, list | tuple) or not all(
        isinstance(path, str) and path.startswith("/") for path in paths
    ):
        raise _fail(option, "a list of paths starting with '/'", paths)
    # "/health/" and "/health" mean the same prefix.
    return tuple(path.rstrip("/") or "/" for path in paths)


def _networks(option: str, values: object) -> tuple[Network, ...]:
    if not isinstance(values, list | tuple) or not all(isinstance(value, str) for value in values):
        raise _fail(option, "a list of addresses or networks", values)
    try:
        return tuple(ipaddress.ip_network(value, strict=False) for value in values)
    except ValueError as exc:
        raise _fail(option, "a list of addresses or networks", values) from exc


def _callable(option: str, value: object) -> Any:
    if value is not None and not callable(value):
        raise _fail(option, "a callable or None", value)
    return value


def compile_config(config: AuditMiddlewareConfig | None) -> Settings:
    """Check every option of `config` (None: the defaults) and return what the middleware reads."""
    config = config if config is not None else AuditMiddlewareConfig()
    sample_rate = config.sample_rate
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float) or not 0 <= sample_rate <= 1:
        raise _fail("sample_rate", "a number from 0 to 1", sample_rate)
    slow = config.slow_request_threshold_ms
    request_id_header = config.request_id_header
    if not isinstance(request_id_header, str) or not _HEADER_NAME.fullmatch(request_id_header):
        raise _fail("request_id_header", "a header name", request_id_header)
    log_body = _flag(config, "log_body")
    max_body_size = _positive("max_body_size", config.max_body_size, integer=True)
    return Settings(
        log_requests=_flag(config, "log_requests"),
        log_responses=_flag(config, "log_responses"),
        log_headers=_flag(config, "log_headers"),
        redacted=ALWAYS_REDACTED | _header_names("redact_headers", config.redact_headers),
        body_limit=max_body_size if log_body else 0,
        exclude_paths=_paths("exclude_paths", config.exclude_paths),
        slow_ms=math.inf if slow is None else _positive("slow_request_threshold_ms", slow),
        detect_anomalies=_flag(config, "detect_anomalies"),
        auth_failure_threshold=_positive(
            "auth_failure_threshold", config.auth_failure_threshold, integer=True
        ),
        auth_failure_window_s=_positive("auth_failure_window_s", config.auth_failure_window_s),
        sample_rate=float(sample_rate),
        trusted_proxies=_networks("trusted_proxies", config.trusted_proxies),
        request_id_header=request_id_header.lower(),
        websocket_request_id_header=_flag(config, "websocket_request_id_header"),
        user_resolver=_callable("user_resolver", config.user_resolver),
        grpc_user_resolver=_callable("grpc_user_resolver", config.grpc_user_resolver),
    )
