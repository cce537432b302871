"""What `AuditLogger.search_events`, `get_audit_statistics`, `cleanup_old_events`, `detect_anomalies`,
`verify` and `export_subject` do, with the seed's keyword names. DuckDB and the file system block, so
each step runs in a worker thread (asyncio.to_thread) and the service's event loop never waits on the
lake.

The lake is the one under the data directory (`AuditConfig.data_dir`, else $AUDITSHIP_DATA_DIR, else
./auditship-data) in the agent's default layout. Times may be aware, or naive in local time. Bad
arguments, and a missing or empty lake, raise QueryError (an AuditshipError) with the message the CLI
would print.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Unpack

import msgspec

from auditship.agents.config import default_keys_dir, load_config
from auditship.agents.embedded import agent_config
from auditship.agents.errors import ConfigError
from auditship.agents.retention import Location, Removal, apply_retention
from auditship.ondisk import data_layout
from auditship.query.anomalies import Anomaly, anomalies
from auditship.query.cat import open_field_keys
from auditship.query.compliance_report import compliance_report as compliance_report_of
from auditship.query.errors import QueryError
from auditship.query.filters import EventFilter, enum_values
from auditship.query.lake import LakeReader
from auditship.query.report import report_json
from auditship.query.rows import fetch_events
from auditship.query.search import search_sql
from auditship.query.stats import Statistics, statistics
from auditship.query.subject import checked, export_sql, opened, subject_fields
from auditship.query.verify import run
from shipper.config import AuditConfig
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity
from shipper.search_filters import SearchFilters


def location(data_dir: Path | None) -> Location:
    return Location.of_data_dir(data_dir or data_layout.data_dir())


def _utc(moment: datetime | None) -> datetime | None:
    """A naive datetime is local time, as Python's `astimezone` takes it: the seed's examples pass
    `datetime.now() - timedelta(...)`."""
    return moment.astimezone(UTC) if moment is not None else None


def _many(value: str | Sequence[str] | None) -> list[str]:
    """One value (a StrEnum member is a str), several, or none."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


async def search_events(data_dir: Path | None, **filters: Unpack[SearchFilters]) -> AsyncIterator[AuditEvent]:
    """The matching events, newest first, fetched a thousand at a time."""
    # A misspelt filter would otherwise be no filter at all: every event, silently.
    unknown = sorted(set(filters) - SearchFilters.__optional_keys__)
    if unknown:
        raise TypeError(f"search_events() got an unexpected keyword argument {unknown[0]!r}")
    severities = enum_values(AuditSeverity, _many(filters.get("severity")), "severity")
    wanted = EventFilter(
        event_types=enum_values(AuditEventType, _many(filters.get("event_type")), "event_type"),
        user_id=filters.get("user_id"),
        resource_type=filters.get("resource_type"),
        resource_id=filters.get("resource_id"),
        source_ip=filters.get("source_ip"),
        service=filters.get("service_name"),
        outcomes=enum_values(AuditOutcome, _many(filters.get("outcome")), "outcome"),
        min_severity=severities[0] if severities else None,
        start=_utc(filters.get("start_time")),
        end=_utc(filters.get("end_time")),
        text=filters.get("text"),
    )
    reader = await asyncio.to_thread(LakeReader, location(data_dir).lake, wanted.prune().keeps)
    try:
        cursor = await asyncio.to_thread(reader.execute, *search_sql(wanted, filters.get("limit")))
        while found := await asyncio.to_thread(fetch_events, cursor):
            for _, event in found:
                yield event
    finally:
        reader.close()


async def get_audit_statistics(
    data_dir: Path | None, start_time: datetime | None = None, end_time: datetime | None = None
) -> Statistics:
    return await asyncio.to_thread(statistics, location(data_dir).lake, _utc(start_time), _utc(end_time))


async def cleanup_old_events(
    data_dir: Path | None,
    older_than_days: int,
    compliance: list[str] | None = None,
    config: AuditConfig | None = None,
) -> list[Removal]:
    """Retention (agents/retention.py) for this data directory, laid out as `config` lays out an embedded
    agent's (its SQL sink too; None: the defaults), not below the floors of `compliance`; what was
    removed, kept under a legal hold, or failed to be."""
    if older_than_days <= 0:
        raise QueryError(f"older_than_days: must be positive, got {older_than_days}")
    try:
        agent = agent_config(config) if config is not None else None
    except ValueError as exc:
        raise QueryError(str(exc)) from exc
    where = Location.of_data_dir(data_dir or data_layout.data_dir(), agent)
    return await asyncio.to_thread(
        apply_retention,
        where,
        timedelta(days=older_than_days),
        compliance=compliance or (),
        setting="cleanup_old_events(older_than_days)",
    )


async def compliance_report(
    data_dir: Path | None,
    framework: str,
    start_time: datetime | None,
    end_time: datetime | None,
    config_file: Path | None,
) -> dict[str, Any]:
    """`audit-query report --format json` (query/report.py) over this data directory."""
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        raise QueryError(str(exc)) from exc
    where = location(data_dir)
    found = await asyncio.to_thread(
        compliance_report_of, where, config, framework, _utc(start_time), _utc(end_time)
    )
    return report_json(found)


async def detect_anomalies(
    data_dir: Path | None,
    start_time: datetime | None,
    end_time: datetime | None,
    rules: list[str],
    config_file: Path | None,
) -> list[Anomaly]:
    """`audit-query anomalies` (query/anomalies.py) over this data directory's lake, with the `[detect]`
    thresholds of `config_file` (None: the defaults)."""
    try:
        config = load_config(config_file).detect
    except ConfigError as exc:
        raise QueryError(str(exc)) from exc
    lake = location(data_dir).lake
    return await asyncio.to_thread(anomalies, lake, config, _utc(start_time), _utc(end_time), rules)


async def verify(
    data_dir: Path | None,
    *,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    sink: str = "all",
    public_key: Path | None = None,
    keys_dir: Path | None = None,
) -> dict[str, Any]:
    """`audit-query verify` for this data directory: `{"ok": bool, "summary": {...}, "findings": [{"sink",
    "kind", "path", "verdict", "detail"}, ...]}`. The keys (public keys, run records) are in `keys_dir`,
    default `<data_dir>-keys`; `public_key`, a PEM file, is then the one key trusted."""
    data = data_dir or data_layout.data_dir()
    report = await asyncio.to_thread(
        run.verify,
        data,
        keys_dir or default_keys_dir(data),
        sink=sink,
        public_keys=[public_key] if public_key is not None else [],
        since=_utc(start_time),
        until=_utc(end_time),
    )
    built: dict[str, Any] = msgspec.to_builtins(report)
    return built


async def export_subject(
    data_dir: Path | None,
    subject: str,
    *,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    decrypt: bool = False,
    keys_dir: Path | None = None,
    config_file: Path | None = None,
) -> AsyncIterator[AuditEvent]:
    """`audit-query subject export` (query/subject.py): the subject's events, oldest first, fetched a
    thousand at a time; with `decrypt`, their sensitive values opened with the keys in `keys_dir`
    (default `<data_dir>-keys`). `config_file`'s `[subjects] fields` say what names a subject."""
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        raise QueryError(str(exc)) from exc
    fields = subject_fields(config.subjects.fields)
    where = location(data_dir)
    wanted = EventFilter(start=_utc(start_time), end=_utc(end_time))
    sql = export_sql(fields, checked(subject), wanted)
    assert where.data is not None and where.keys is not None  # of_data_dir names both
    keys = open_field_keys(keys_dir or where.keys, where.data.root) if decrypt else None
    reader = await asyncio.to_thread(LakeReader, where.lake, wanted.prune().keeps)
    try:
        cursor = await asyncio.to_thread(reader.execute, *sql)
        while found := await asyncio.to_thread(lambda: list(opened(fetch_events(cursor), keys))):
            for _, event in found:
                yield event
    finally:
        reader.close()
