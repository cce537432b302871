"""The lake reader leaves out a part DuckDB cannot read: every command prints every readable event, warns
once naming the part, and exits 1; the Python API warns through the `auditship.query` logger."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from pathlib import Path

import duckdb
import pytest

from auditship.ondisk.lake_layout import PART, live_parts
from auditship.query.lake import LakeReader
from shipper import AuditConfig, AuditContext, AuditLogger
from tests.agents.sinks.damage import DAMAGE, cut_in_half, overwrite_footer
from tests.query.conftest import ALL
from tests.query.test_search import merge, three_flushes

ALL_ROWS_SQL = "SELECT * FROM events ORDER BY wal_seq"
"""Every column: a query that needs no column of a damaged page reads the part without fault."""


def part_holding(lake: Path, seq: int) -> Path:
    """The live part whose WAL range holds `seq`."""
    (part,) = [path for path in live_parts(lake) if seq in range_of(path)]
    return part


def range_of(part: Path) -> range:
    match = PART.match(part.name)
    assert match is not None
    return range(int(match[1]), int(match[2]) + 1)


def seqs_in(part: Path) -> set[int]:
    with duckdb.connect() as con:
        return {seq for (seq,) in con.execute("SELECT wal_seq FROM read_parquet(?)", [str(part)]).fetchall()}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("seq", [13, 1], ids=["the newest part", "the oldest part"])
def test_every_command_prints_every_readable_event_warns_once_and_exits_1(data_dir, cli, damage, seq):
    """A damaged part (the newest, which gives the view its columns, or the oldest): sql, search, stats and
    tail print all the other events, each warns once naming the part and DuckDB's message, and exits 1."""
    lake = data_dir / "lake"
    part = part_holding(lake, seq)
    readable = [s for s in ALL if s not in seqs_in(part)]
    make, message = DAMAGE[damage]
    make(part)

    sql = cli("sql", "--lake", lake, ALL_ROWS_SQL)
    search = cli("search", "--lake", lake, "--limit", "0")
    stats = cli("stats", "--lake", lake, "--format", "json")
    tail = cli("tail", "--lake", lake, "-n", "20", "--format", "json")

    assert [json.loads(line)["wal_seq"] for line in sql.out.splitlines()] == sorted(readable)
    assert [json.loads(line)["wal_seq"] for line in search.out.splitlines()] == readable
    assert json.loads(stats.out)["total_events"] == len(readable)
    assert [json.loads(line)["wal_seq"] for line in tail.out.splitlines()] == sorted(readable)
    for result in (sql, search, stats, tail):
        assert result.status == 1
        assert result.err.startswith(f"audit-query: warning: {part}: cannot be read (")
        assert message in result.err and result.err.endswith("); its events are left out\n")
        assert result.err.count("\n") == 1


def test_the_python_api_leaves_the_part_out_and_warns_in_the_auditship_query_logger(data_dir, caplog):
    """search_events and get_audit_statistics answer from the readable parts; a WARNING of the
    `auditship.query` logger names the damaged one."""
    part = part_holding(data_dir / "lake", 13)
    lost = seqs_in(part)
    overwrite_footer(part)
    config = AuditConfig()
    config.data_dir = data_dir
    logger = AuditLogger(config, AuditContext(service_name="auditor"), emit=lambda event: None)

    async def both() -> tuple[list[str], int]:
        found = [event.event_id async for event in logger.search_events()]
        return found, (await logger.get_audit_statistics())["total_events"]

    with caplog.at_level(logging.WARNING, logger="auditship.query"):
        found, total = asyncio.run(both())

    assert found == [f"{seq:032x}" for seq in ALL if seq not in lost]
    assert total == len(ALL) - len(lost)
    warnings = [record.getMessage() for record in caplog.records if record.name == "auditship.query"]
    assert (
        warnings
        == [f"{part}: cannot be read (Variable-length int over 10 bytes.); its events are left out"] * 2
    )


def test_a_damaged_merged_part_gives_way_to_the_parts_it_covers(tmp_path, cli):
    """A merged part that cannot be read, beside the parts it merged (compaction deletes them only after
    a grace period): those are read instead, and no event is missing."""
    lake = three_flushes(tmp_path)
    (directory,) = {part.parent for part in live_parts(lake)}
    merge(directory, remove_sources=False)
    (merged,) = live_parts(lake)
    cut_in_half(merged)

    result = cli("sql", "--lake", lake, ALL_ROWS_SQL)

    assert [json.loads(line)["wal_seq"] for line in result.out.splitlines()] == [1, 2, 3, 4, 5, 6]
    assert result.status == 1
    assert result.err.startswith(
        f"audit-query: warning: {merged}: cannot be read (Invalid Input Error: No magic"
    )


def test_a_part_found_unreadable_is_left_out_up_front_until_it_changes(data_dir):
    """Once found, the part is left out before DuckDB opens it by every later reader of the process, for
    as long as its size and mtime stay; restored, it is read again."""
    lake = data_dir / "lake"
    part = part_holding(lake, 1)
    original = part.with_name("original.bak")  # not a part's name: no reader lists it
    shutil.copy2(part, original)
    cut_in_half(part)

    with LakeReader(lake) as first:
        assert first.skipped == {}  # nothing is checked before a query fails
        first.execute(ALL_ROWS_SQL).fetchall()
        assert list(first.skipped) == [part]
    with LakeReader(lake) as second:
        assert list(second.skipped) == [part]
        assert len(second.execute(ALL_ROWS_SQL).fetchall()) == len(ALL) - len(seqs_in(original))

    original.replace(part)
    with LakeReader(lake) as third:
        assert len(third.execute(ALL_ROWS_SQL).fetchall()) == len(ALL)
        assert third.skipped == {}


def test_an_error_in_the_query_is_not_taken_for_damage(lake, cli):
    """Bad SQL and a value DuckDB refuses stay errors of the query: exit 2, no part left out."""
    for sql in ("SELECT nope FROM events", "SELECT regexp_matches(message, '(') FROM events"):
        result = cli("sql", "--lake", lake, sql)
        assert result.status == 2 and "warning" not in result.err and result.err.count("\n") == 1


def test_a_lake_of_damaged_parts_only_is_an_error_after_the_warnings(tmp_path, cli):
    """No part left to read: one warning per part, then the error, exit 2."""
    lake = three_flushes(tmp_path)
    parts = live_parts(lake)
    for part in parts:
        cut_in_half(part)

    result = cli("search", "--lake", lake)

    lines = result.err.splitlines()
    assert result.status == 2 and len(lines) == len(parts) + 1
    assert lines[-1] == f"audit-query: {lake}: no part of the lake can be read ({len(parts)} left out)"
