"""After a read of many parts fails, `unreadable` names the parts DuckDB cannot read: those its message
names, else those whose footer, else whose pages, do not read; and none for an error of the query itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from auditship.agents.crypto import Keyring
from auditship.agents.sinks.base import Delivery
from auditship.agents.sinks.parquet.config import ParquetSinkConfig
from auditship.agents.sinks.parquet.sink import ParquetSink
from auditship.ondisk.lake_layout import live_parts
from auditship.ondisk.unreadable import unreadable
from tests.agents.sinks.damage import DAMAGE
from tests.agents.sinks.entries import entries

READ_ALL = "SELECT * FROM read_parquet(?)"


@pytest.fixture
def parts(data_dir: Path, keyring: Keyring) -> list[Path]:
    """Nine parts of three events each, in one partition."""
    sink = ParquetSink(ParquetSinkConfig(compaction=False), data_dir, keyring)
    sink.open()
    for first in range(1, 28, 3):
        assert sink.write_batch(entries(range(first, first + 3), keyring)) is Delivery.DELIVERED
    sink.close()
    return live_parts(sink.lake)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as connection:
        yield connection


def failure(con: duckdb.DuckDBPyConnection, sql: str, parts: list[Path]) -> duckdb.Error:
    """What DuckDB raises for `sql` over `parts`."""
    with pytest.raises(duckdb.Error) as raised:
        con.execute(sql, [[str(part) for part in parts]]).fetchall()
    return raised.value


@pytest.mark.parametrize("damage", DAMAGE)
def test_the_damaged_part_among_nine_is_found_with_duckdbs_message(con, parts, damage):
    """Whether DuckDB names the file (cut, emptied) or not (a footer or page header overwritten), the one
    damaged part is found, with a message that says what is wrong with it."""
    make, message = DAMAGE[damage]
    make(parts[5])
    found = unreadable(con, parts, failure(con, READ_ALL, parts))
    assert list(found) == [parts[5]] and message in found[parts[5]]


def test_several_damaged_parts_are_all_found(con, parts):
    """Two footers overwritten, neither named by DuckDB: halving finds both."""
    make, _ = DAMAGE["footer overwritten"]
    for part in (parts[0], parts[8]):
        make(part)
    assert set(unreadable(con, parts, failure(con, READ_ALL, parts))) == {parts[0], parts[8]}


def test_an_error_of_the_query_itself_finds_nothing(con, parts):
    """Bad SQL and a function DuckDB refuses an argument of, over sound parts: nothing to blame on them."""
    bad_regex = "SELECT regexp_matches(message, '(') FROM read_parquet(?)"
    for sql in ("SELECT nope FROM read_parquet(?)", bad_regex):
        assert unreadable(con, parts, failure(con, sql, parts)) == {}


def test_a_part_that_went_meanwhile_is_not_reported(con, parts):
    """A part deleted between the listing and the read (compaction, retention) is no damage."""
    parts[3].unlink()
    assert unreadable(con, parts, failure(con, READ_ALL, parts)) == {}
