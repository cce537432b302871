"""`audit-query sql` runs DuckDB SQL over the view `events`."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from tests.query.conftest import write_known
from tests.query.lakes import connect


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_sql_over_the_events_view(lake, cli):
    """A group-by over every live part, in JSON Lines by default off a terminal."""
    result = cli(
        "sql", "--lake", lake, "SELECT service, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC, 1"
    )
    assert result.status == 0
    assert lines(result.out) == [
        {"service": "api", "n": 4},
        {"service": "billing", "n": 4},
        {"service": "records", "n": 4},
        {"service": "_unknown", "n": 1},
    ]


def test_json_columns_stay_json_and_types_survive(lake, cli):
    """details/changes come out as JSON objects, lists as lists, times in ISO 8601, dates as dates."""
    result = cli(
        "sql",
        "--lake",
        lake,
        "SELECT changes, compliance, timestamp, date, status_code FROM events WHERE wal_seq = 13",
    )
    (row,) = lines(result.out)
    assert row["changes"] == {"limit": {"from": 5, "to": 10}} and row["compliance"] == ["SOX", "GDPR"]
    assert row["timestamp"].endswith("Z") and len(row["date"]) == 10 and row["status_code"] is None


def test_describe_lists_the_columns(lake, cli):
    """Every AuditEvent field, wal_seq, and date/service from the partition path."""
    names = [row["column_name"] for row in lines(cli("sql", "--lake", lake, "DESCRIBE events").out)]
    assert names[:3] == ["event_type", "event_id", "timestamp"]
    assert names[-3:] == ["wal_seq", "date", "service"]


def test_csv_and_table(lake, cli):
    """CSV with a header; the table padded to its widest cells."""
    out = cli(
        "sql", "--lake", lake, "--format", "csv", "SELECT wal_seq, message FROM events ORDER BY 1 LIMIT 2"
    ).out
    assert list(csv.reader(io.StringIO(out))) == [
        ["wal_seq", "message"],
        ["1", "user_login success"],
        ["2", "bad password"],
    ]
    table = cli(
        "sql", "--lake", lake, "--format", "table", "SELECT wal_seq, message FROM events ORDER BY 1 LIMIT 2"
    )
    assert table.out.splitlines() == [
        "wal_seq  message",
        "1        user_login success",
        "2        bad password",
    ]


def test_parts_of_an_older_schema_are_read_by_column_name(tmp_path, cli):
    """A part written before a field existed lacks its column: the view still reads it, with NULLs there."""
    # At 09:00, the first two events (230 h and 220 h before) fall on two dates: the oldest part holds
    # the first alone, whatever the hour the test runs.
    lake = write_known(tmp_path / "data", now=datetime(2026, 3, 10, 9, 0, tzinfo=UTC)) / "lake"
    oldest = sorted(lake.glob("date=*/service=*/part-*.parquet"))[0]
    con = connect()
    older = oldest.with_name(".old")
    con.execute(
        "COPY (SELECT * EXCLUDE (compliance) FROM read_parquet(?)) TO ? (FORMAT parquet)",
        [str(oldest), str(older)],
    )
    con.close()
    older.replace(oldest)
    result = cli("sql", "--lake", lake, "SELECT count(*) AS n, count(compliance) AS tagged FROM events")
    assert (result.status, lines(result.out)) == (0, [{"n": 13, "tagged": 12}])


def test_sql_reads_the_lake_and_nothing_else_by_default(data_dir, cli, tmp_path):
    """Other files (a key beside the lake, /etc/passwd), writes, extensions and settings are refused,
    each as one line and status 2; the same read of the lake works."""
    lake = data_dir / "lake"
    secret = data_dir / "keys" / "field.key"
    secret.parent.mkdir(exist_ok=True)
    secret.write_bytes(b"not for auditors")
    refused = [
        f"SELECT * FROM read_blob('{secret}')",
        "SELECT * FROM read_text('/etc/passwd')",
        f"SELECT * FROM read_csv('{secret}')",
        f"COPY (SELECT * FROM events) TO '{tmp_path / 'out.csv'}'",
        f"ATTACH '{tmp_path / 'other.db'}'",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        "SELECT 1; SELECT 2",
    ]
    for sql in refused:
        result = cli("sql", "--lake", lake, sql)
        assert result.status == 2 and result.err.count("\n") == 1, (sql, result)
        assert b"not for auditors" not in result.out.encode(), sql
    assert not (tmp_path / "out.csv").exists()
    assert cli("sql", "--lake", lake, "SELECT count(*) AS n FROM events").status == 0


def test_unsafe_gives_an_administrator_duckdb_unrestricted(lake, cli, tmp_path):
    """--unsafe: COPY a result out."""
    out = tmp_path / "out.csv"
    result = cli("sql", "--lake", lake, "--unsafe", f"COPY (SELECT count(*) AS n FROM events) TO '{out}'")
    assert result.status == 0, result
    assert out.read_text().splitlines() == ["n", "13"]
