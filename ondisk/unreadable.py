"""Which parts DuckDB cannot read, found once a read of many of them has failed.

Shared by compaction (which quarantines such a part) and audit-query (which leaves it out). Nothing is
checked before a read fails: on a sound lake this costs nothing. After a failure:

- DuckDB names the file for much of the damage it meets: no magic bytes at the end (a truncated part),
  a file too small, a page that does not decompress, a file it cannot open. Those named are the culprits.
- A footer or page header whose Thrift encoding is broken fails with a bare message that names no file
  ("Variable-length int over 10 bytes."). Then the parts are read again, halves of halves, until each
  failing one is alone: a few reads per bad part instead of one per part. Footers first (the metadata
  of 1,550 parts reads in 0.1 s); only for a bare message from the decoder, when every footer reads, is
  each part read whole (every column hashed), which costs a scan of the parts given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # duckdb is imported by the functions that run it: ondisk stays light at import
    import duckdb

_FOOTERS = "SELECT count(*) FROM parquet_file_metadata(?)"
# Every value of every column: hash() needs them all, so each page is decompressed and decoded.
_WHOLE = """
    SELECT bit_xor(hash(COLUMNS(*))) FROM read_parquet(?, hive_partitioning = false, union_by_name = true)
"""


def may_be_damage(exc: duckdb.Error) -> bool:
    """Whether DuckDB raises errors like `exc` for a file it cannot read (not for bad SQL, say)."""
    import duckdb

    return isinstance(exc, duckdb.IOException | duckdb.InvalidInputException) or type(exc) is duckdb.Error


def first_line(exc: duckdb.Error) -> str:
    """DuckDB's message, first line only (the rest draws a caret under the SQL)."""
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def unreadable(
    connection: duckdb.DuckDBPyConnection, paths: Sequence[Path], error: duckdb.Error
) -> dict[Path, str]:
    """Of `paths`, whose read failed with `error`, those DuckDB cannot read, each with its message.

    Empty when `error` is no damage of theirs that can be found; the caller then reports `error`. A part
    that went meanwhile (compaction, retention) is not damaged, and is not in the answer.
    """
    import duckdb

    if not may_be_damage(error):
        return {}
    text = str(error)
    found = {path: first_line(error) for path in paths if str(path) in text}
    if not found:
        found = _failing(connection, _FOOTERS, list(paths))
    if not found and type(error) is duckdb.Error:  # the decoder's own message: a page header, perhaps
        found = _failing(connection, _WHOLE, list(paths))
    return {path: why for path, why in found.items() if path.exists()}


def _failing(connection: duckdb.DuckDBPyConnection, sql: str, paths: list[Path]) -> dict[Path, str]:
    """The paths for which `sql` fails, by bisection (recursion depth log2(len(paths)))."""
    import duckdb

    if not paths:
        return {}
    try:
        connection.execute(sql, [[str(path) for path in paths]]).fetchall()
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:
        if len(paths) == 1:
            return {paths[0]: first_line(exc)}
        half = len(paths) // 2
        return _failing(connection, sql, paths[:half]) | _failing(connection, sql, paths[half:])
    return {}
