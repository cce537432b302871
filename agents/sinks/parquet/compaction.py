"""Compaction: a partition's small parts merged into few large ones, while readers read the lake.

Which parts: in each partition, the live parts (layout.live) smaller than `target_bytes` and written
more than `min_age_s` ago (an hour by default: by then the sink has long stopped adding to that stretch
of the WAL, so a closed hour is merged once rather than again and again), taken in runs of neighbours
by WAL range and cut wherever the next part would take a merge past `target_bytes`. A merged part that
is still small is merged again, with its neighbours, an hour later; a quiet partition so ends up with
few parts per day.

How: a run's rows are copied, in order, into one part named for the run's whole range (`part-<first of
its first part>-<last of its last part>`), under a staging name, fsynced and renamed into place. From
that rename on, `live_parts` lists the new part and not the small ones it covers, so a reader sees each
row exactly once whether it listed before or after. The small parts are deleted at a later run, once
the part covering them is `grace_s` old, so that a reader that listed them just before the rename can
still open them. Only neighbours are merged, so a merged part still holds every row of its partition in
its range (the invariant that makes writing idempotent, see writer.py).

A kill at any moment leaves the small parts alone, or them and the part that covers them (readers take
the latter; the former are deleted after the grace period); a staging file is removed when the sink
opens. Each run is bounded in time: no merge starts after `budget_s`, and a merge is at most
`target_bytes` of input.

A part DuckDB cannot read (a truncated file, a broken footer or page: ondisk/unreadable.py finds
which) would fail every merge of its partition. It is moved to the quarantine,
`<lake>/../quarantine/<lake's name>/` under its path in the lake
(`data_dir/quarantine/lake/date=.../service=.../part-...`), kept as evidence and out of every reader's
way: outside the lake, so no glob over the lake (`lake/**/*.parquet`) meets it.
The rest of the run is merged without it. A part its range covered, if still there, is live again.

With digests (digests.py), a merge and a quarantine are recorded in the sink's chain before they happen,
and only parts already digested are merged; a record that cannot be written stops the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import duckdb
import msgspec

from auditship.agents.durable import fsync_directory
from auditship.agents.sinks.parquet.digests import LakeDigests
from auditship.agents.sinks.parquet.writer import publish
from auditship.ondisk.lake_layout import STAGING_PREFIX, Part, live, part_name, partitions, parts
from auditship.ondisk.unreadable import unreadable

logger = logging.getLogger("auditship.sinks.parquet")

# hive_partitioning off: date and service stay in the path, not in the file. The files are read in the
# order given (one thread), so rows stay in WAL order; union_by_name lets parts written before a column
# was added merge with newer ones.
_MERGE = """
    COPY (SELECT * FROM read_parquet(?, hive_partitioning = false, union_by_name = true))
    TO ? (FORMAT parquet, COMPRESSION zstd)
"""


class CompactionPolicy(msgspec.Struct, frozen=True, kw_only=True):
    interval_s: float = 60.0
    """The sink compacts at most this often (between two batches)."""
    min_age_s: float = 3600.0
    """A part is merged only once it was written this long ago."""
    grace_s: float = 600.0
    """Parts covered by a merged part are deleted once that part is this old (readers that listed the
    small parts just before the merge have this long to open them)."""
    target_bytes: int = 64 * 1024 * 1024
    """Parts this large are left alone; a merge takes at most this much input."""
    budget_s: float = 2.0
    """No merge starts after this long in one run."""


class Compacted(NamedTuple):
    merged: int  # small parts merged
    into: int  # parts they became
    deleted: int  # parts deleted that merged parts covered


class _Stat(NamedTuple):
    part: Part
    size: int
    mtime: float


class Compactor:
    def __init__(
        self,
        lake: Path,
        db: duckdb.DuckDBPyConnection,
        policy: CompactionPolicy,
        digests: LakeDigests | None = None,
    ) -> None:
        self._lake = lake
        self._db = db
        self._policy = policy
        self._digests = digests
        self._quarantine = lake.parent / "quarantine" / lake.name
        self.quarantined = 0
        """Parts moved to the quarantine since this compactor was made."""

    def run(self) -> Compacted:
        """One pass over the lake. Raises OSError or duckdb.Error; what was done before stays done."""
        deadline = time.monotonic() + self._policy.budget_s
        now = time.time()
        merged = into = deleted = 0
        for directory in partitions(self._lake):
            if time.monotonic() >= deadline:
                break
            found = parts(directory)
            kept = [_stat(part) for part in live(found)]
            live_set = {stat.part for stat in kept}
            deleted += self._delete_covered([p for p in found if p not in live_set], kept, now)
            for run in self._runs(kept, now):
                if time.monotonic() >= deadline:
                    break
                done = self._merge(directory, run)
                merged += done
                into += 1 if done else 0
        return Compacted(merged, into, deleted)

    def _delete_covered(self, covered: list[Part], kept: list[_Stat], now: float) -> int:
        deleted = 0
        for part in covered:
            cover = next(s for s in kept if s.part.first <= part.first and part.last <= s.part.last)
            if cover.mtime <= now - self._policy.grace_s:
                # Not fsynced: a deletion a power cut undoes leaves a covered part, deleted next time.
                part.path.unlink(missing_ok=True)
                deleted += 1
        return deleted

    def _runs(self, kept: list[_Stat], now: float) -> Iterator[list[Part]]:
        """Runs of neighbouring parts worth merging: each small and old enough, at most target_bytes."""
        run: list[Part] = []
        size = 0
        digested = self._digests.digested_through if self._digests is not None else None
        for stat in kept:
            small_and_old = (
                stat.size < self._policy.target_bytes
                and stat.mtime <= now - self._policy.min_age_s
                and (digested is None or stat.part.last <= digested)
            )
            if small_and_old and size + stat.size <= self._policy.target_bytes:
                run.append(stat.part)
                size += stat.size
                continue
            if len(run) > 1:
                yield run
            run, size = ([stat.part], stat.size) if small_and_old else ([], 0)
        if len(run) > 1:
            yield run

    def _merge(self, directory: Path, run: list[Part]) -> int:
        """Merge `run`, less the parts DuckDB cannot read, which go to the quarantine; returns how many
        parts were merged (0 when fewer than two were left)."""
        while len(run) > 1:  # at most len(run) times: each failure quarantines a part or raises
            try:
                self._copy(directory, run)
                return len(run)
            except duckdb.Error as exc:
                damaged = unreadable(self._db, [part.path for part in run], exc)
                if not damaged:
                    raise
            for path, reason in damaged.items():
                self._move_to_quarantine(path, reason)
            run = [part for part in run if part.path not in damaged]
        return 0

    def _move_to_quarantine(self, path: Path, reason: str) -> None:
        if self._digests is not None:
            self._digests.quarantining(path, reason)
        target = self._quarantine / path.relative_to(self._lake)
        if target.exists():  # the same range damaged twice: keep both as evidence
            target = target.with_name(f"{target.name}.{time.time_ns()}")
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Not fsynced: a move that a power cut undoes is found and made again at the next compaction.
        path.rename(target)
        self.quarantined += 1
        logger.error(
            "parquet sink: %s cannot be read (%s); moved to %s, its events are no longer in the lake "
            "(%d parts quarantined since the sink opened)",
            path,
            reason,
            target,
            self.quarantined,
        )

    def _copy(self, directory: Path, run: list[Part]) -> None:
        target = directory / part_name(run[0].first, run[-1].last)
        staging = directory / f"{STAGING_PREFIX}{target.name}"
        try:
            self._db.execute(_MERGE, [[str(part.path) for part in run], str(staging)])
            if self._digests is not None:
                (rows,) = self._db.execute(
                    "SELECT count(*) FROM read_parquet(?)", [str(staging)]
                ).fetchone() or (0,)
                self._digests.compacting(staging, target, run, rows)
            publish(staging, target)
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
        fsync_directory(directory)


def _stat(part: Part) -> _Stat:
    stat = part.path.stat()
    return _Stat(part, stat.st_size, stat.st_mtime)
