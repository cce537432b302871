"""The parquet sink's digests (agents/integrity/): every part it writes or merges, and every part it
moves to the quarantine.

A part is hashed as it is published (writer.py), so digesting it costs no read. Parts wait for their
digest at most `digest_min_interval_s`: under steady load one digest lists the parts of many batches.

Compaction records its merge before the merged part takes its name: the merged part (hashed under its
staging name) and the parts it replaces, whose rows it holds. A crash between the record and the rename
leaves a record naming a part that never came; the sink's next start finds it (the merged part of the
newest digest is missing) and records the merge undone, listing the replaced parts again. Compaction
merges only parts already digested, so a merge never hides a part no digest has seen.

After a crash, or a write that failed after publishing some of its parts, the parts written past the
ledger's seq are read back (DuckDB: their `wal_seq`s, in order) and listed by the next digest. The
chain's first digest adopts the parts already there.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from auditship.agents.config import IntegrityConfig
from auditship.agents.integrity.chain import ChainWriter, Change
from auditship.agents.integrity.ledger import SeqLedger
from auditship.agents.integrity.sink_digests import SinkDigests
from auditship.agents.sinks.parquet.writer import PublishedPart
from auditship.ondisk.digests import DigestedObject, RemovedObject, object_path
from auditship.ondisk.hashing import sha256_file
from auditship.ondisk.lake_layout import PART, Part, partitions, parts

logger = logging.getLogger("auditship.sinks.parquet")
_SEQS = """
    SELECT filename, wal_seq FROM read_parquet(?, filename = true, hive_partitioning = false,
                                               union_by_name = true)
    ORDER BY wal_seq
"""


class LakeDigests(SinkDigests):
    def __init__(self, writer: ChainWriter, settings: IntegrityConfig, data_dir: Path, lake: Path) -> None:
        super().__init__(writer, settings)
        self._data_dir = data_dir
        self._lake = lake
        self._pending: dict[Path, DigestedObject] = {}
        self._db: duckdb.DuckDBPyConnection | None = None
        self._unsynced = False  # a write failed: what it published is read back before the next is noted
        self.digested_through = 0
        """The highest seq of the parts in the chain: compaction merges only parts at or below it."""

    def start(self, db: duckdb.DuckDBPyConnection) -> None:
        self._db = db
        tip = self.writer.tip()
        if tip is None:
            self._adopt()
            return
        self.ledger = SeqLedger(tip.seq_through)
        self.digested_through = tip.seq_through
        self.started = True
        self._undo_unfinished_compaction(db)
        self.resync(db)
        self.digest("start", always=True)

    def failed(self) -> None:
        """A write failed: it may have published parts before it did, which the next `wrote` reads back."""
        self._unsynced = True

    def wrote(self, published: list[PublishedPart], seqs: list[int]) -> None:
        if self._unsynced and self._db is not None:
            try:
                self.resync(self._db)  # before the seqs of this write, which come after those parts'
                self._unsynced = False
            except (OSError, duckdb.Error) as exc:  # tried again after the next write
                logger.error(
                    "parquet sink: cannot read back the parts of a failed write for its digest: %s", exc
                )
        for done in published:
            part = Part(done.path, done.first, done.last)
            self._pending[done.path] = self._listed(part, done.rows, done.size, done.sha256)
        if self.ledger.wrote(seqs):
            self.digest("gap")
        elif published:
            self.ask()

    def resync(self, db: duckdb.DuckDBPyConnection) -> None:
        """Find the parts written past the ledger that no digest lists yet (after a crash, or a failed
        write that published some of its parts): read their seqs back, and list them next."""
        found = [part for part in _all_parts(self._lake) if part.last > self.ledger.seq_through]
        found = [part for part in found if part.path not in self._pending]
        if not found:
            return
        rows: dict[str, int] = {}
        seqs = []
        for filename, seq in db.execute(_SEQS, [[str(part.path) for part in found]]).fetchall():
            rows[filename] = rows.get(filename, 0) + 1
            seqs.append(seq)
        for part in found:
            self._pending[part.path] = self._object(part, rows.get(str(part.path), 0))
        self.ledger.wrote(seqs)
        logger.info(
            "parquet sink: %d parts written before a crash or a failed write go in the next digest",
            len(found),
        )

    def compacting(self, staging: Path, target: Path, run: list[Part], rows: int) -> None:
        """Record the merge of `run` into `target` (still at `staging`); OSError when it cannot be recorded,
        and the merge must not happen."""
        size, sha256 = sha256_file(staging)
        merged = self._listed(Part(target, run[0].first, run[-1].last), rows, size, sha256)
        named = object_path(self._data_dir, target)
        removed = [
            RemovedObject(object_path(self._data_dir, part.path), "compaction", named, named) for part in run
        ]
        if not self.append(Change(reason="compaction", objects=[merged], removed=removed)):
            raise OSError(f"cannot record the merge into {target.name} in {self.writer.directory}")

    def quarantining(self, path: Path, reason: str) -> None:
        """Record that `path` goes to the quarantine; OSError when it cannot be recorded (it stays)."""
        removed = [RemovedObject(object_path(self._data_dir, path), "quarantine", reason)]
        if not self.append(Change(reason="quarantine", removed=removed)):
            raise OSError(f"cannot record the quarantine of {path} in {self.writer.directory}")

    def _adopt(self) -> None:
        """The chain's first digest: the parts already there, as they are."""
        found = _all_parts(self._lake)
        objects = [self._object(part, None, adopted=True) for part in found]
        self.ledger = SeqLedger(max((part.last for part in found), default=0))
        self.started = True
        change = Change(reason="start", objects=objects, seq_through=self.ledger.seq_through)
        if not self.append(change):
            self._pending.update((part.path, obj) for part, obj in zip(found, objects, strict=True))
        self.digested_through = self.ledger.seq_through

    def _undo_unfinished_compaction(self, db: duckdb.DuckDBPyConnection) -> None:
        newest = self.writer.newest()
        if newest is None or newest.digest.reason != "compaction" or not newest.digest.objects:
            return
        merged = newest.digest.objects[0]
        if (self._data_dir / merged.path).exists():
            return
        replaced = [self._data_dir / removal.path for removal in newest.digest.removed]
        back = [
            Part(path, int(match[1]), int(match[2])) for path in replaced if (match := PART.match(path.name))
        ]
        objects = []
        for part in back:
            if part.path.exists():
                (count,) = db.execute(
                    "SELECT count(*) FROM read_parquet(?)", [str(part.path)]
                ).fetchone() or (0,)
                objects.append(self._object(part, count))
        undone = RemovedObject(
            merged.path, "compaction_undone", "the agent stopped before the merged part was in place"
        )
        if self.append(Change(reason="recovery", objects=objects, removed=[undone])):
            logger.warning(
                "parquet sink: the merge into %s did not finish before a stop; its %d parts stay",
                merged.path,
                len(objects),
            )

    def _object(self, part: Part, rows: int | None, *, adopted: bool = False) -> DigestedObject:
        """`part` as a digest lists it, hashed now."""
        size, sha256 = sha256_file(part.path)
        return self._listed(part, rows, size, sha256, adopted=adopted)

    def _listed(
        self, part: Part, rows: int | None, size: int, sha256: str, *, adopted: bool = False
    ) -> DigestedObject:
        path = object_path(self._data_dir, part.path)
        return DigestedObject(path, "part", size, sha256, part.first, part.last, rows, adopted)

    def _has_pending(self) -> bool:
        return super()._has_pending() or bool(self._pending)

    def _change(self, reason: str) -> Change | None:
        # Listed even when retention removed it meanwhile (its record is in the chain already, so it stays
        # removed): the listing says how many events it held, which continuity counts.
        objects = list(self._pending.values())
        return Change(reason=reason, objects=objects) if objects else None

    def _digested(self, change: Change) -> None:
        self._pending.clear()
        self.digested_through = (
            change.seq_through if change.seq_through is not None else self.digested_through
        )


def _all_parts(lake: Path) -> list[Part]:
    if not lake.is_dir():
        return []
    return [part for directory in partitions(lake) if directory.is_dir() for part in parts(directory)]
