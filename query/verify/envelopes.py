"""Sensitive values in clear in the lake: every value of a part's `sensitive` column must be an envelope
(ondisk/envelope.py), since the Parquet sink never writes one in clear. A part that hashes as digested
holds what the agent wrote, so only the others are read: parts not digested yet, and those found modified
or unexpected (objects.py), of which this names the event and the field. Reading every part's
`sensitive` column would cost more than hashing the whole lake (0.4 s against 0.25 s for 106 MB).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from auditship.ondisk.digests import object_path
from auditship.ondisk.envelope import ENVELOPE_PATTERN
from auditship.query.verify.report import Finding, Verdict

SHOWN = 20

_IN_CLEAR = """
    SELECT filename, wal_seq, event_id, string_agg(key, ', ' ORDER BY key)
    FROM (SELECT filename, wal_seq, event_id, sensitive
          FROM read_parquet(?, union_by_name = true, filename = true) WHERE sensitive <> '{}'),
         json_each(sensitive)
    WHERE json_type(value) <> 'VARCHAR' OR NOT regexp_full_match(value ->> '$', ?)
    GROUP BY ALL ORDER BY wal_seq LIMIT ?
"""


def lake_values_in_clear(
    db: duckdb.DuckDBPyConnection, data_dir: Path, pending: list[Path], found: list[Finding]
) -> list[Finding]:
    """A finding per event (at most SHOWN) whose `sensitive` holds a value that is no envelope, in the
    `pending` parts and those `found` not valid."""
    suspect = {data_dir / f.path for f in found if f.kind == "part" and f.verdict is not Verdict.VALID}
    parts = [str(path) for path in [*pending, *sorted(suspect)] if path.is_file()]
    if not parts:
        return []
    try:
        rows = db.execute(_IN_CLEAR, [parts, ENVELOPE_PATTERN, SHOWN]).fetchall()
    except duckdb.Error:
        # A part that does not read as Parquet is reported modified already: the others one by one.
        rows = []
        for part in parts:
            try:
                rows += db.execute(_IN_CLEAR, [[part], ENVELOPE_PATTERN, SHOWN]).fetchall()
            except duckdb.Error:
                continue
        rows = sorted(rows, key=lambda row: row[1])[:SHOWN]
    return [
        Finding(
            "parquet",
            "part",
            object_path(data_dir, Path(path)),
            Verdict.MODIFIED,
            f"event {event_id} (wal_seq {seq}): sensitive {fields} not an envelope but a value in clear",
        )
        for path, seq, event_id, fields in rows
    ]
