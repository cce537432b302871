"""`AuditLogger`: the seed's logging methods, turning calls into AuditEvents handed to `emit`.

The pipeline is fixed when the logger is built. Filters (`min_severity`, `excluded_event_types`)
become two frozensets, so a call costs two set lookups whether or not anything is filtered, and an
event that is filtered out is counted in `logger.filtered` before anything is built. Each event
that passes gets the context's service fields and compliance tags and the correlation ids in effect
(see shipper.correlation), and goes to `emit`.

A logger built without `emit` uses `shipper.dispatch.default_emit`, which sends to the emitter or, while
`shipper.testing.capture_events()` is active, to that capture.

The logging methods are `async def` because the seed awaits them; none of them waits for anything,
since `emit` hands the event over without blocking, unless delivery is acknowledged (`fail_closed`,
`async_logging=False`, or `log_event(..., durable=True)`): then each waits, without blocking the event
loop, until the agent has the event in its WAL, synced. `search_events`, `get_audit_statistics`,
`cleanup_old_events` and `verify` read the agent's lake through the reader that shipper.readers finds at
first call (audit-query's, which needs DuckDB, the agent extra), in a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Unpack

from shipper import correlation
from shipper.builder import AuditEventBuilder
from shipper.compliance import check_retention, frameworks
from shipper.config import AuditConfig, AuditContext
from shipper.dispatch import Emit, Submit, default_emit, default_submit
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity
from shipper.http_status import classify_status
from shipper.readers import lake_reader
from shipper.search_filters import SearchFilters

# Severity when the caller gives none, by outcome: a refused or failed attempt matters more than a
# success, and an error (the system could not decide) most.
_SEVERITY_BY_OUTCOME = {
    AuditOutcome.SUCCESS: AuditSeverity.INFO,
    AuditOutcome.FAILURE: AuditSeverity.MEDIUM,
    AuditOutcome.ERROR: AuditSeverity.HIGH,
    AuditOutcome.UNKNOWN: AuditSeverity.LOW,
}


class AuditLogger:
    """Logs a service's audit events; each method returns the event logged, or None if filtered out.

    `config` and `context` are read once, here: later changes to them do not affect this logger.
    Each method takes positionally only what identifies the event (as the seed's examples pass it);
    the rest is keyword-only, so an argument cannot land in the wrong slot. Raises ValueError when
    `min_severity` or `excluded_event_types` holds something that is not a severity or an event type.
    """

    def __init__(
        self,
        config: AuditConfig,
        context: AuditContext,
        emit: Emit | None = None,
        submit: Submit | None = None,
    ) -> None:
        self.config = config
        self.context = context
        self._emit: Emit = emit if emit is not None else default_emit
        self._durable = config.fail_closed or not config.async_logging
        if emit is not None and submit is None and self._durable:
            raise ValueError(
                "AuditConfig.fail_closed (or async_logging=False) needs acknowledged delivery: give the "
                "logger `submit` as well as `emit`, or neither"
            )
        self._submit: Submit = submit if submit is not None else default_submit
        self._delivery_timeout = config.delivery_timeout_seconds
        try:
            min_rank = AuditSeverity(config.min_severity).rank
        except ValueError as exc:
            raise ValueError(f"AuditConfig.min_severity: {exc}") from exc
        try:
            excluded = frozenset(AuditEventType(t) for t in config.excluded_event_types)
        except ValueError as exc:
            raise ValueError(f"AuditConfig.excluded_event_types: {exc}") from exc
        self._kept_severities = frozenset(s for s in AuditSeverity if s.rank >= min_rank)
        self._excluded_types = excluded
        self._service = context.event_fields()
        self._service_name = context.service_name
        self._service_version = context.service_version
        self._environment = context.environment
        self._node_id = context.node_id
        self._compliance = tuple(dict.fromkeys(context.compliance_requirements))
        self._filtered = 0
        # `+=` on an attribute is not atomic across threads; a counted drop must not be lost.
        self._filtered_lock = threading.Lock()

    @property
    def filtered(self) -> int:
        """How many events the configured filters have dropped."""
        return self._filtered

    def _drops(self, event_type: AuditEventType, severity: AuditSeverity) -> bool:
        if event_type in self._excluded_types or severity not in self._kept_severities:
            with self._filtered_lock:
                self._filtered += 1
            return True
        return False

    async def _deliver(self, event: AuditEvent, durable: bool | None) -> None:
        """Emit; or, durable, wait until the agent has the event synced (AuditDeliveryError if not in
        `delivery_timeout_seconds`), without blocking the event loop."""
        if self._durable if durable is None else durable:
            await self._submit(event).wait_async(self._delivery_timeout)
        else:
            self._emit(event)

    async def _send(
        self,
        event_type: AuditEventType,
        severity: AuditSeverity | None,
        outcome: AuditOutcome,
        message: str,
        action: str,
        *,
        details: Mapping[str, Any] | None,
        **fields: Any,
    ) -> AuditEvent | None:
        """The event, sent; None when the config filters it out. A severity of None follows the outcome:
        SUCCESS INFO, FAILURE MEDIUM, ERROR HIGH, UNKNOWN LOW."""
        if severity is None:
            severity = _SEVERITY_BY_OUTCOME[outcome]
        if self._drops(event_type, severity):
            return None
        ids = correlation.current()
        event = AuditEvent(
            event_type=event_type,
            severity=severity,
            outcome=outcome,
            message=message,
            action=action,
            details=dict(details) if details else {},
            **fields,
            service_name=self._service_name,
            service_version=self._service_version,
            environment=self._environment,
            node_id=self._node_id,
            correlation_id=ids.correlation_id,
            request_id=ids.request_id,
            trace_id=ids.trace_id,
            span_id=ids.span_id,
            compliance=list(self._compliance),
        )
        await self._deliver(event, None)
        return event

    def create_event_builder(self) -> AuditEventBuilder:
        """A builder whose events carry this logger's service context."""
        return AuditEventBuilder(self.context)

    async def log_event(self, event: AuditEvent, *, durable: bool | None = None) -> AuditEvent | None:
        """Log a prepared event (usually from `create_event_builder()`).

        Fills what the event leaves unset, in place: the service fields and compliance tags when
        it has no `service_name`, and each correlation id that is None. `durable=True` returns only
        once the agent has the event in its WAL, synced, and raises AuditDeliveryError when it has not
        within `delivery_timeout_seconds`; None follows `fail_closed` / `async_logging` of the config.
        """
        if self._drops(event.event_type, event.severity):
            return None
        if event.service_name is None:
            for name, value in self._service.items():
                setattr(event, name, value)
            event.compliance = list(dict.fromkeys([*self._compliance, *event.compliance]))
        ids = correlation.current()
        if event.correlation_id is None:
            event.correlation_id = ids.correlation_id
        if event.request_id is None:
            event.request_id = ids.request_id
        if event.trace_id is None:
            event.trace_id = ids.trace_id
        if event.span_id is None:
            event.span_id = ids.span_id
        await self._deliver(event, durable)
        return event

    async def log_auth_event(
        self,
        event_type: AuditEventType,
        user_id: str | None = None,
        *,
        outcome: AuditOutcome = AuditOutcome.SUCCESS,
        source_ip: str | None = None,
        user_agent: str | None = None,
        session_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        message: str | None = None,
        severity: AuditSeverity | None = None,
    ) -> AuditEvent | None:
        """Log a login, logout or authentication result.

        Severity, unless given, follows the outcome: SUCCESS INFO, FAILURE MEDIUM, ERROR HIGH,
        UNKNOWN LOW. The message defaults to "<event type> <outcome>", e.g. "user_login success".
        """
        return await self._send(
            event_type,
            severity,
            outcome,
            message if message is not None else f"{event_type} {outcome}",
            str(event_type),
            details=details,
            user_id=user_id,
            session_id=session_id,
            source_ip=source_ip,
            user_agent=user_agent,
        )

    async def log_api_event(
        self,
        method: str,
        endpoint: str,
        status_code: int,
        *,
        user_id: str | None = None,
        duration_ms: float | None = None,
        request_size: int | None = None,
        response_size: int | None = None,
        source_ip: str | None = None,
        user_agent: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent | None:
        """Log an API call as an API_REQUEST event; outcome and severity follow `classify_status`.

        The action and message are "<method> <endpoint>" (the message adds the status code).
        """
        outcome, severity = classify_status(status_code)
        action = f"{method} {endpoint}"
        return await self._send(
            AuditEventType.API_REQUEST,
            severity,
            outcome,
            f"{action} {status_code}",
            action,
            details=details,
            user_id=user_id,
            source_ip=source_ip,
            user_agent=user_agent,
            method=method,
            endpoint=endpoint,
            status_code=status_code,
            duration_ms=duration_ms,
            request_size=request_size,
            response_size=response_size,
        )

    async def log_data_event(
        self,
        event_type: AuditEventType,
        resource_type: str,
        resource_id: str,
        action: str,
        *,
        user_id: str | None = None,
        changes: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
        sensitive: Mapping[str, Any] | None = None,
        outcome: AuditOutcome = AuditOutcome.SUCCESS,
        severity: AuditSeverity | None = None,
        message: str | None = None,
    ) -> AuditEvent | None:
        """Log an operation on a resource (create, read, update, delete, export, transaction...).

        `sensitive` values are encrypted by the agent. Severity, unless given, follows the outcome as
        in `log_auth_event`; the message defaults to "<action> <resource_type>/<resource_id>".
        """
        return await self._send(
            event_type,
            severity,
            outcome,
            message if message is not None else f"{action} {resource_type}/{resource_id}",
            action,
            details=details,
            user_id=user_id,
            resource_type=resource_type,
            resource_id=resource_id,
            changes=dict(changes) if changes else {},
            sensitive=dict(sensitive) if sensitive else {},
        )

    async def log_security_event(
        self,
        event_type: AuditEventType,
        message: str,
        *,
        severity: AuditSeverity = AuditSeverity.HIGH,
        source_ip: str | None = None,
        user_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        outcome: AuditOutcome = AuditOutcome.FAILURE,
        user_agent: str | None = None,
    ) -> AuditEvent | None:
        """Log a security finding: a violation, suspicious activity, a rate limit hit.

        The outcome is that of the attempt the event reports, so it defaults to FAILURE: the attempt
        was refused or flagged. Pass SUCCESS when it got through, UNKNOWN when that is not known.
        """
        return await self._send(
            event_type,
            severity,
            outcome,
            message,
            str(event_type),
            details=details,
            user_id=user_id,
            source_ip=source_ip,
            user_agent=user_agent,
        )

    async def log_system_event(
        self,
        event_type: AuditEventType,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        severity: AuditSeverity = AuditSeverity.INFO,
        outcome: AuditOutcome = AuditOutcome.SUCCESS,
    ) -> AuditEvent | None:
        """Log what the service itself did: startup, shutdown, a configuration change, a privacy
        request handled, a retention run."""
        return await self._send(event_type, severity, outcome, message, str(event_type), details=details)

    def search_events(self, **filters: Unpack[SearchFilters]) -> AsyncIterator[AuditEvent]:
        """The events in the lake that match `filters`, newest first: `async for event in ...`.

        The lake is the agent's, under `config.data_dir` (None: $AUDITSHIP_DATA_DIR, else
        ./auditship-data). Raises query.errors.QueryError (an AuditshipError) for a bad filter value or a
        lake that is missing or has no parts yet, RuntimeError without the agent extra.
        """
        return lake_reader().search_events(self.config.data_dir, **filters)

    async def get_audit_statistics(
        self, start_time: datetime | None = None, end_time: datetime | None = None
    ) -> Mapping[str, Any]:
        """Counts of the events in [start_time, end_time): `total_events`, `security_events`,
        `error_events`, `event_counts` (by type), `outcome_counts`, `severity_counts`, `service_counts`,
        `hourly_counts`; the definitions are `audit-query stats --help`'s."""
        return await lake_reader().get_audit_statistics(self.config.data_dir, start_time, end_time)

    async def cleanup_old_events(self, older_than_days: int | None = None) -> list[Any]:
        """Remove what is wholly older than `older_than_days` (default: `config.retention_days`) from the
        data directory, as `audit-query retention` does, with the sinks this config gives an embedded
        agent (the SQL sink's old rows too, with `enable_database_logging`); returns what was removed (or
        failed to be), and what a legal hold keeps (`held`). Raises shipper.compliance.RetentionFloorError
        (a ValueError), removing nothing, when the age is below the floor of a framework in the
        context's `compliance_requirements` (SOX 7 years, HIPAA 6, PCI 1)."""
        days = self.config.retention_days if older_than_days is None else older_than_days
        chosen = frameworks(self.context.compliance_requirements, strict=False)
        check_retention(days, chosen, "cleanup_old_events(older_than_days)")
        names = [framework.name for framework in chosen]
        return await lake_reader().cleanup_old_events(self.config.data_dir, days, names, self.config)

    async def compliance_report(
        self,
        framework: str,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        config_file: str | Path | None = None,
    ) -> Mapping[str, Any]:
        """`audit-query report --framework ... --format json` for [start_time, end_time): `framework`,
        `scope`, and `sections` (access, failed, changes, incomplete for PCI, retention, integrity), each
        with its `rows` as maps. `config_file`: the agent.toml whose compliance and retention to report
        against (default: the defaults)."""
        config = Path(config_file) if config_file is not None else None
        return await lake_reader().compliance_report(
            self.config.data_dir, framework, start_time, end_time, config
        )

    async def detect_anomalies(
        self,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        rules: str | Sequence[str] | None = None,
        config_file: str | Path | None = None,
    ) -> list[Mapping[str, Any]]:
        """What the agent's detection rules find among the events in [start_time, end_time) of the lake,
        oldest first, as `audit-query anomalies --format json` prints them: `rule`, `severity`,
        `event_type`, `key`, `window_s`, `window_start`, `window_end`, `count`, `threshold`, `baseline`,
        `event_ids`. `rules`: one or several names (default: those the config enables); `config_file`:
        the agent.toml whose `[detect]` thresholds to use (default: the built-in ones)."""
        names = [rules] if isinstance(rules, str) else list(rules or ())
        config = Path(config_file) if config_file is not None else None
        return await lake_reader().detect_anomalies(self.config.data_dir, start_time, end_time, names, config)

    async def verify(
        self,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        sink: str = "all",
        public_key: Path | None = None,
        keys_dir: Path | None = None,
    ) -> Mapping[str, Any]:
        """Check the agent's signed digests against its files and lake, as `audit-query verify` does:
        `result["ok"]` is True only when every digest and object is valid (or pending), and
        `result["findings"]` has a verdict per object. `keys_dir` (default: beside the data directory,
        `<data_dir>-keys`) holds the public keys and run records; `public_key` (a PEM file from
        `audit-agent keys export-public`) is the one key trusted instead."""
        return await lake_reader().verify(
            self.config.data_dir,
            start_time=start_time,
            end_time=end_time,
            sink=sink,
            public_key=public_key,
            keys_dir=keys_dir,
        )

    def export_subject(
        self,
        subject: str,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        *,
        decrypt: bool = False,
        keys_dir: str | Path | None = None,
        config_file: str | Path | None = None,
    ) -> AsyncIterator[AuditEvent]:
        """Every event by or about data subject `subject` in [start_time, end_time), oldest first, as
        `audit-query subject export` finds them (`async for event in ...`): user_id equal to it, or one
        of `config_file`'s `[subjects] fields` naming it (default: user_id and resource:user). With
        `decrypt`, sensitive values are opened with the keys in `keys_dir` (default: beside the data
        directory, `<data_dir>-keys`); one whose subject was forgotten reads "[erased subject]"."""
        return lake_reader().export_subject(
            self.config.data_dir,
            subject,
            start_time=start_time,
            end_time=end_time,
            decrypt=decrypt,
            keys_dir=Path(keys_dir) if keys_dir is not None else None,
            config_file=Path(config_file) if config_file is not None else None,
        )
