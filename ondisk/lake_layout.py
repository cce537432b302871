"""The lake's layout, shared by the Parquet sink (writer, compaction) and audit-query (readers).

    lake/date=YYYY-MM-DD/service=<name>/part-<first seq:020d>-<last seq:020d>.parquet

A part's name carries the WAL range it holds. Compaction writes a part covering several others before
it deletes them, so for a moment both exist: readers take only the parts not contained in another
part's range (`live_parts`), and never see a row twice. The covered parts are deleted only once the
part covering them is 10 minutes old (agents/sinks/parquet/compaction.py, `grace_s`): a reader that
opens its files within that time of listing them never misses one; one that keeps a listing longer
should list again. Files are written under a staging name (`.tmp-` prefix, not `*.parquet`) and renamed
into place, so no reader sees half a file. DuckDB's `hive_partitioning` undoes the %-quoting of
`service`.
"""

from __future__ import annotations

import re
from collections.abc import Container
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

PART = re.compile(r"^part-(\d{20})-(\d{20})\.parquet$")
STAGING_PREFIX = ".tmp-"
UNKNOWN_SERVICE = "_unknown"


class Part(NamedTuple):
    path: Path
    first: int
    last: int


def part_name(first: int, last: int) -> str:
    return f"part-{first:020d}-{last:020d}.parquet"


def partition_dir(lake: Path, date: str, service: str | None) -> Path:
    """Hive-style directories; the service name is %-quoted so that any name is one safe path segment."""
    return lake / f"date={date}" / f"service={quote(service or UNKNOWN_SERVICE, safe='')}"


def parts(directory: Path) -> list[Part]:
    """The parts in one partition directory, by first seq."""
    found = []
    for path in directory.iterdir():
        match = PART.match(path.name)
        if match:
            found.append(Part(path, int(match[1]), int(match[2])))
    return sorted(found, key=lambda part: (part.first, -part.last))


def partitions(lake: Path) -> list[Path]:
    """The partition directories, by date then service."""
    return sorted(lake.glob("date=*/service=*"))


def live(found: list[Part]) -> list[Part]:
    """Of one partition's parts (as `parts` sorts them), those whose range no other part covers."""
    kept: list[Part] = []
    covered_to = -1
    for part in found:
        if part.last <= covered_to:
            continue  # compacted into a part that is already listed
        kept.append(part)
        covered_to = part.last
    return kept


def live_parts(lake: Path, unreadable: Container[Path] = frozenset()) -> list[Path]:
    """Every part a reader should read: those whose range no other part of their partition covers.
    Parts in `unreadable` are left out, and so cover nothing: the parts they cover, if still there, are
    read instead."""
    return [
        part.path
        for directory in partitions(lake)
        for part in live([part for part in parts(directory) if part.path not in unreadable])
    ]
