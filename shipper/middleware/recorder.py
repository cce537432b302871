"""`AuditRecorder`: what the HTTP middleware and the gRPC interceptors share.

The protocol modules observe a request or call; `skip()` tells them, before any event is built, when it
yields nothing (so that sampling saves the work too); otherwise they describe it as one API_REQUEST
event (`request_event()`), and `record()` sends it and the events derived from it:

- the request event itself, unless `log_requests` is off or sampling leaves it out. Sampling only ever
  leaves out ordinary requests: one that failed authentication, was refused, was rate limited, erred
  (5xx or an exception), was slow or looked suspicious is always sent;
- 401 -> AUTH_FAILURE, 403 -> ACCESS_DENIED, 429 -> RATE_LIMIT_EXCEEDED (gRPC codes map onto these);
- a slow-request event (API_RESPONSE, action "slow_request") past `slow_request_threshold_ms`;
- SUSPICIOUS_ACTIVITY for each signal of shipper.middleware.anomalies.

Derived events share the request event's correlation ids, method, endpoint, status, client and user,
and are never sampled. One recorder may serve an HTTP middleware and gRPC interceptors at once; it is
safe to use from many threads.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

from shipper.config import AuditContext
from shipper.correlation import CorrelationIds
from shipper.dispatch import Emit, default_emit
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity, new_event_id
from shipper.http_status import classify_status
from shipper.middleware.anomalies import AuthFailureBursts, Signal
from shipper.middleware.clientip import ClientAddress
from shipper.middleware.config import AuditMiddlewareConfig, compile_config

log = logging.getLogger("auditship.middleware")

T = TypeVar("T")

# Status -> (event type, action, what happened): the refusals that are security events of their own.
_REFUSALS = {
    401: (AuditEventType.AUTH_FAILURE, "auth_failure", "authentication failed"),
    403: (AuditEventType.ACCESS_DENIED, "access_denied", "access denied"),
    429: (AuditEventType.RATE_LIMIT_EXCEEDED, "rate_limited", "rate limit exceeded"),
}
_ERRED = (AuditOutcome.ERROR, AuditSeverity.HIGH)
# classify_status's answers, looked up rather than computed: a Python call costs more than the lookup.
_BY_STATUS = {status: classify_status(status) for status in range(100, 600)}
# utc_now() without the call through it.
_now = datetime.now
# Kept out of derived events: the request event already has them, and they are the bulk of it.
_REQUEST_ONLY_DETAILS = frozenset({"request_headers", "response_headers"})


class MiddlewareStats(msgspec.Struct):
    """Counters since the recorder was built.

    requests: requests and calls audited; excluded: passed through unaudited (`exclude_paths`);
    events: events handed to emit; sampled_out: request events left out by `sample_rate`;
    suspicious: SUSPICIOUS_ACTIVITY events raised; resolver_errors: user resolvers that raised (the
    event then has no user id); errors: requests whose auditing failed (the request itself went on).
    """

    requests: int = 0
    excluded: int = 0
    events: int = 0
    sampled_out: int = 0
    suspicious: int = 0
    resolver_errors: int = 0
    errors: int = 0


class AuditRecorder:
    """Turns observed requests into audit events and counts what it sends and drops.

    `context` stamps the service fields and compliance tags on every event; `emit` defaults to
    `shipper.dispatch.default_emit` (the process's emitter, or the active `capture_events()`).
    Raises ValueError naming the option when `config` holds a value it cannot use.
    """

    def __init__(
        self,
        config: AuditMiddlewareConfig | None = None,
        *,
        context: AuditContext | None = None,
        emit: Emit | None = None,
    ) -> None:
        self.settings = settings = compile_config(config)
        self._emit: Emit = emit if emit is not None else default_emit
        self._compliance = tuple(dict.fromkeys(context.compliance_requirements)) if context else ()
        # What every request event shares. Each is this, replaced: msgspec.structs.replace costs a third
        # of building an AuditEvent from keywords, and this runs once per request.
        self._template = AuditEvent(
            event_type=AuditEventType.API_REQUEST,
            service_name=context.service_name if context is not None else None,
            service_version=context.service_version if context is not None else None,
            environment=context.environment if context is not None else None,
            node_id=context.node_id if context is not None else None,
        )
        self.client_address = ClientAddress(settings.trusted_proxies)
        self.bursts = (
            AuthFailureBursts(settings.auth_failure_threshold, settings.auth_failure_window_s)
            if settings.detect_anomalies
            else None
        )
        self._keeps_all = settings.log_requests and settings.sample_rate >= 1.0
        self._excluded_paths = frozenset(settings.exclude_paths)
        self._excluded_prefixes = tuple(path.rstrip("/") + "/" for path in settings.exclude_paths)
        self._stats = MiddlewareStats()
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    @property
    def stats(self) -> MiddlewareStats:
        """A snapshot of the counters."""
        with self._lock:
            return msgspec.structs.replace(self._stats)

    def excluded(self, path: str) -> bool:
        """Whether `path` (an HTTP path or a gRPC method) is one of `exclude_paths` or below one; counted."""
        if path in self._excluded_paths or path.startswith(self._excluded_prefixes):
            with self._lock:
                self._stats.excluded += 1
            return True
        return False

    def resolve(self, resolver: Callable[[Any], T], subject: object) -> T | None:
        """`resolver(subject)`, or None when it raises: a broken resolver must not fail the request."""
        try:
            return resolver(subject)
        except Exception as exc:  # noqa: BLE001 - counted and reported once
            with self._lock:
                self._stats.resolver_errors += 1
            self._warn_once("resolver", f"the user resolver raised {exc!r}; events carry no user id")
            return None

    def failed(self, exc: Exception) -> None:
        """Count a request whose auditing raised, and report the first such failure."""
        with self._lock:
            self._stats.errors += 1
        self._warn_once("failed", f"auditing a request failed: {exc!r}")

    def request_event(
        self,
        *,
        event_id: str,
        ids: CorrelationIds,
        method: str,
        endpoint: str,
        status_code: int,
        error: BaseException | None,
        duration_ms: float,
        details: dict[str, Any],
        source_ip: str | None,
        user_agent: str | None,
        user_id: str | None,
        request_size: int | None = None,
        response_size: int | None = None,
        sensitive: dict[str, Any] | None = None,
    ) -> AuditEvent:
        """The API_REQUEST event of one request or call, with the id `event_id` (made when it began: see
        shipper.middleware.ids). An exception makes it an ERROR (HIGH) whatever the status, and its type
        goes into `details["exception"]`."""
        if error is None:
            outcome, severity = _BY_STATUS.get(status_code) or classify_status(status_code)
        else:
            outcome, severity = _ERRED
            details["exception"] = type(error).__qualname__
        action = f"{method} {endpoint}"
        return msgspec.structs.replace(
            self._template,
            event_id=event_id,
            timestamp=_now(UTC),
            severity=severity,
            outcome=outcome,
            message=f"{action} {status_code}",
            action=action,
            user_id=user_id,
            source_ip=source_ip,
            user_agent=user_agent,
            correlation_id=ids.correlation_id,
            request_id=ids.request_id,
            trace_id=ids.trace_id,
            span_id=ids.span_id,
            method=method,
            endpoint=endpoint,
            status_code=status_code,
            duration_ms=duration_ms,
            request_size=request_size,
            response_size=response_size,
            details=details,
            changes={},
            sensitive=sensitive if sensitive is not None else {},
            compliance=list(self._compliance),
        )

    def skip(
        self, status_code: int, duration_ms: float, error: BaseException | None, signals: list[Signal]
    ) -> bool:
        """Whether a request yields no event at all, decided before any is built, and counted: an
        ordinary request (not refused, no 5xx or exception, not slow, no signal) that sampling leaves
        out, or that yields nothing because `log_requests` is off. Otherwise pass its event to `record`."""
        if self._keeps_all:  # the default: every request yields its event
            return False
        settings = self.settings
        if (
            status_code in _REFUSALS
            or status_code >= 500
            or error is not None
            or duration_ms > settings.slow_ms
            or signals
        ):
            return False
        sampled_out = settings.log_requests and random.random() >= settings.sample_rate  # noqa: S311 - sampling, not security
        if settings.log_requests and not sampled_out:
            return False
        with self._lock:
            self._stats.requests += 1
            self._stats.sampled_out += sampled_out
        return True

    def record(self, event: AuditEvent, signals: list[Signal]) -> None:
        """Send `event` (a request_event that `skip` kept) as configured, with the events derived from it."""
        settings = self.settings
        slow = (event.duration_ms or 0.0) > settings.slow_ms
        if not signals and not slow and event.status_code not in _REFUSALS:
            # What nearly every request is: its own event and nothing derived.
            if settings.log_requests:
                self._emit(event)
            with self._lock:
                self._stats.requests += 1
                self._stats.events += settings.log_requests
            return
        refusal = _REFUSALS.get(event.status_code or 0)
        if refusal is not None and refusal[0] is AuditEventType.AUTH_FAILURE:
            self._check_burst(event, signals)
        outgoing = [event] if settings.log_requests else []
        if refusal is not None:
            event_type, action, what = refusal
            outgoing.append(
                self._derived(event, event_type, action, what, severity=AuditSeverity.MEDIUM, extra={})
            )
        if slow:
            outgoing.append(
                self._derived(
                    event,
                    AuditEventType.API_RESPONSE,
                    "slow_request",
                    f"slow request ({event.duration_ms:.0f} ms)",
                    severity=AuditSeverity.MEDIUM,
                    extra={"threshold_ms": settings.slow_ms},
                )
            )
        outgoing.extend(
            self._derived(
                event,
                AuditEventType.SUSPICIOUS_ACTIVITY,
                signal.name,
                signal.name.replace("_", " "),
                severity=AuditSeverity.HIGH,
                extra={"signal": signal.name, "evidence": signal.evidence[:256]},
            )
            for signal in signals
        )
        for item in outgoing:
            self._emit(item)
        with self._lock:
            stats = self._stats
            stats.requests += 1
            stats.events += len(outgoing)
            stats.suspicious += len(signals)

    def record_after_response(self, event: AuditEvent, error: BaseException, duration_ms: float) -> None:
        """Work a request went on with after its response was sent (Starlette's BackgroundTasks) raised
        `error`: a BUSINESS_LOGIC event, action `background_task_failed`, ERROR (HIGH), with the request
        `event`'s ids and facts (whether that was sent or sampled out), the exception's type in
        `details["exception"]` and how long the work ran in `duration_ms`. Never sampled."""
        failure = self._derived(
            event,
            AuditEventType.BUSINESS_LOGIC,
            "background_task_failed",
            "background task failed",
            severity=AuditSeverity.HIGH,
            extra={"exception": type(error).__qualname__},
        )
        self._emit(msgspec.structs.replace(failure, outcome=AuditOutcome.ERROR, duration_ms=duration_ms))
        with self._lock:
            self._stats.events += 1

    def _check_burst(self, event: AuditEvent, signals: list[Signal]) -> None:
        bursts = self.bursts
        if bursts is not None and event.source_ip and bursts.failure(event.source_ip, time.monotonic()):
            evidence = f"{bursts.threshold} authentication failures within {bursts.window_s:g} s"
            signals.append(Signal("auth_failure_burst", evidence))

    def _derived(
        self,
        event: AuditEvent,
        event_type: AuditEventType,
        action: str,
        what: str,
        *,
        severity: AuditSeverity,
        extra: dict[str, Any],
    ) -> AuditEvent:
        details = {k: v for k, v in event.details.items() if k not in _REQUEST_ONLY_DETAILS}
        details.update(extra)
        client = f" from {event.source_ip}" if event.source_ip else ""
        return msgspec.structs.replace(
            event,
            event_type=event_type,
            event_id=new_event_id(),
            severity=severity,
            action=action,
            message=f"{what}: {event.action} {event.status_code}{client}",
            details=details,
            sensitive={},
        )

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s (further occurrences are counted in the recorder's stats)", message)


def given_or_built(
    where: str,
    recorder: AuditRecorder | None,
    config: AuditMiddlewareConfig | None,
    context: AuditContext | None,
    emit: Emit | None,
) -> AuditRecorder:
    """`recorder`, or one built from `config`, `context` and `emit`: what a middleware or interceptor
    constructor takes. ValueError naming `where` when given both."""
    if recorder is None:
        return AuditRecorder(config, context=context, emit=emit)
    if config is not None or context is not None or emit is not None:
        raise ValueError(f"{where}: recorder: give a recorder or config/context/emit, not both")
    return recorder
