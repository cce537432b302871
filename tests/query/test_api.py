"""The seed's Python API over the lake: AuditLogger.search_events, get_audit_statistics and
cleanup_old_events, reading the lake under AuditConfig.data_dir."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from auditship.agents.sinks.sql.config import SqlSinkConfig
from auditship.agents.sinks.sql.sink import SqlSink
from auditship.query.errors import QueryError
from shipper import AuditConfig, AuditContext, AuditEventType, AuditLogger, AuditSeverity
from tests.agents.sinks.entries import entries
from tests.query.conftest import ALL, NOW, known_events
from tests.query.test_stats import expected


def logger_for(data_dir) -> AuditLogger:
    config = AuditConfig()
    config.data_dir = data_dir
    return AuditLogger(config, AuditContext(service_name="auditor"), emit=lambda event: None)


def found(logger: AuditLogger, **filters) -> list[str]:
    async def collect() -> list[str]:
        return [event.event_id async for event in logger.search_events(**filters)]

    return asyncio.run(collect())


def ids(*seqs: int) -> list[str]:
    return [f"{seq:032x}" for seq in seqs]


def test_search_events_with_the_seeds_keywords(data_dir):
    """event_type, user_id, start_time, limit as the seed passes them, and the other filters."""
    logger = logger_for(data_dir)
    assert found(logger) == ids(*ALL)
    assert found(logger, event_type=AuditEventType.API_REQUEST, user_id="carol") == ids(9)
    assert found(logger, event_type=["user_login", AuditEventType.AUTH_FAILURE]) == ids(8, 2, 1)
    assert found(logger, start_time=NOW - timedelta(hours=24), limit=3) == ids(13, 12, 11)
    assert found(logger, end_time=NOW - timedelta(hours=100)) == ids(3, 2, 1)
    assert found(logger, severity=AuditSeverity.HIGH) == ids(10, 7, 5)
    assert found(logger, resource_type="document", resource_id="1") == ids(6, 3)
    assert found(logger, source_ip="10.0.0.3", outcome="failure") == ids(9, 8)
    assert found(logger, service_name="records", text="export") == ids(10)


def test_naive_times_are_local_time(data_dir):
    """The seed writes `datetime.now() - timedelta(hours=24)`: a naive datetime is the local time."""
    naive_local = datetime.now() - timedelta(hours=24)
    assert found(logger_for(data_dir), start_time=naive_local) == ids(13, 12, 11, 10, 9, 8)


def test_search_yields_the_events_as_they_were(data_dir):
    """Whole AuditEvents, every field as emitted."""

    async def everything():
        return [event async for event in logger_for(data_dir).search_events()]

    assert asyncio.run(everything()) == [event for _, event in reversed(known_events())]


def test_statistics_with_the_seeds_keys(data_dir):
    """total_events, security_events, error_events, event_counts, and the other counts, exactly."""
    stats = asyncio.run(logger_for(data_dir).get_audit_statistics(start_time=NOW - timedelta(hours=24)))
    assert stats["total_events"] == 6 and stats["security_events"] == 2 and stats["error_events"] == 0
    assert {key: value for key, value in stats.items() if key not in ("start", "end")} == expected(24)


def test_cleanup_old_events(data_dir):
    """older_than_days removes the partitions of days wholly past it; the default is retention_days."""
    logger = logger_for(data_dir)
    assert asyncio.run(logger.cleanup_old_events()) == []  # retention_days: 365
    removed = asyncio.run(logger.cleanup_old_events(older_than_days=7))
    assert removed and {removal.kind for removal in removed} == {"lake"}
    # 1 and 2 were 230 and 220 hours ago: their days ended more than 7 days ago at any hour; 3's (150)
    # did not.
    assert found(logger) == ids(*[seq for seq in ALL if seq >= 3])
    with pytest.raises(QueryError, match="older_than_days: must be positive"):
        asyncio.run(logger.cleanup_old_events(older_than_days=0))


def test_bad_arguments_and_a_missing_lake_raise_query_errors(data_dir, tmp_path):
    """With the message the CLI would print, naming the argument or the path; a misspelt keyword is a
    TypeError, as for any function."""
    with pytest.raises(QueryError, match="event_type: unknown value 'login'"):
        found(logger_for(data_dir), event_type="login")
    with pytest.raises(QueryError, match="no lake here"):
        found(logger_for(tmp_path / "elsewhere"))
    with pytest.raises(TypeError, match="unexpected keyword argument 'usr_id'"):
        found(logger_for(data_dir), usr_id="alice")  # not a filter that matches everything


def test_the_shipper_package_works_without_duckdb(data_dir):
    """A service with only msgspec and pyzmq imports shipper and logs; the lake methods say what to
    install."""
    script = f"""
import asyncio, sys
sys.modules["duckdb"] = None  # as if it were not installed
from shipper import AuditConfig, AuditContext, AuditLogger
config = AuditConfig()
config.data_dir = {str(data_dir)!r}
logger = AuditLogger(config, AuditContext(service_name="s"), emit=lambda event: None)
try:
    logger.search_events(user_id="x")
except RuntimeError as exc:
    print(exc)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'auditship[agent]'" in result.stdout


def test_cleanup_old_events_deletes_the_sql_sinks_old_rows_too(tmp_path):
    """With enable_database_logging, the logger's cleanup reaches the SQLite table its embedded agent
    writes (audit.db in the data directory), and reports the rows it deleted."""
    config = AuditConfig(enable_database_logging=True, data_dir=tmp_path)
    sink = SqlSink(SqlSinkConfig(enabled=True), tmp_path)
    sink.open()
    try:
        sink.write_batch(entries(range(1, 4), timestamp=NOW - timedelta(days=40)))
        sink.write_batch(entries(range(4, 6), timestamp=NOW - timedelta(days=1)))
    finally:
        sink.close()
    logger = AuditLogger(config, AuditContext(service_name="auditor"), emit=lambda event: None)
    removed = asyncio.run(logger.cleanup_old_events(older_than_days=30))
    assert [(removal.kind, removal.rows, removal.error) for removal in removed] == [("sql", 3, None)]
    assert "audit_events at sqlite:///" in str(removed[0].path)
