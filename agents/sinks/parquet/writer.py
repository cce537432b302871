"""Writing a batch into the lake: one part per (date, service) partition, each published atomically.

The batch becomes NDJSON (msgspec, one `{"k", "wal_seq", "event"}` object per entry, `k` numbering the
entry's partition); DuckDB reads it with the lake's schema (schema.py) and writes every partition's file
in one `COPY ... PARTITION_BY (k)` into a staging directory. Each file is then made 0600, fsynced and
renamed to `part-<first seq>-<last seq>.parquet` in its partition directory, and the directories are
fsynced: a reader sees a whole part or none, and a part that is there survives a power cut. The fsyncs
of a batch's files, then of its directories, run side by side (SYNC_THREADS): each waits on the disk,
not the CPU, and the file system commits concurrent ones together. One after the other, a batch of 50
partitions waited ~6 ms a partition here, which bounded the lake to ~30,000 events/s over 50 services.

Idempotence. A part holds every entry of its partition whose WAL seq lies in its range, because a
batch is a contiguous run of the WAL and batches are delivered in order (compaction keeps this: it only
merges neighbouring parts). So an entry whose seq is at or below the highest seq already in its
partition is in the lake, and is skipped: a batch offered again after a crash, or after an ERRORED
attempt that published some of its parts, writes only what is missing, whatever its boundaries now.
An entry skipped so must be the event the lake holds under its seq: the parts of its partition whose
range covers it are read (only then: nearly every batch has no such entry), and one whose seq they hold
for another event, or for none (the seq's event went to another partition), is refused to dead letters
with the reason and logged, as the file sink does: the WAL issued that seq twice. A part that cannot be
read leaves its entries unchecked, with a warning, rather than stopping the sink.

A cap. A batch writes parts into at most `max_partitions` partitions: each costs a file DuckDB keeps
open through the COPY, an fsync and a rename, so a batch of events from 5,000 services took 19 s where
one of a few took 0.3 (and any sender can name a service). The batch is cut before the first entry
that would open one more: what comes before is written, what comes after, in every partition, is left
to the next batch, so the cut is a point in the WAL (the cursor moves to it) and no partition's rows
change order.
"""

from __future__ import annotations

import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import NamedTuple

import duckdb
import msgspec

from auditship.agents.durable import fsync_directory
from auditship.agents.sinks.base import Entry, Refused
from auditship.agents.sinks.parquet.schema import event_struct, out_of_range, quote, select_list
from auditship.ondisk.hashing import sha256_file
from auditship.ondisk.lake_layout import STAGING_PREFIX, UNKNOWN_SERVICE, part_name, partition_dir, parts
from shipper.event import AuditEvent

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
SYNC_THREADS = 16
"""fsyncs a write runs at once: 16 took a batch's 50 from ~2 ms a file to ~0.25 (32: no better)."""
logger = logging.getLogger("auditship.sinks.parquet")


class _Row(msgspec.Struct, gc=False):
    """gc=False: a batch makes one per entry, and it refers only to its event (no cycle)."""

    k: int
    wal_seq: int
    event: AuditEvent


class _Partition:
    """One partition's share of a batch."""

    def __init__(self, directory: Path, k: int, floor: int, unfit: str | None) -> None:
        self.directory = directory
        self.k = k
        self.floor = floor  # the highest seq the lake already holds here; entries at or below are skipped
        self.unfit = unfit  # why no part can be written here, or None
        self.first = -1
        self.last = -1
        self.rows = 0


class PublishedPart(NamedTuple):
    """A part a write put in place, as its digest names it."""

    path: Path
    first: int
    last: int
    rows: int
    size: int
    sha256: str


class Written(NamedTuple):
    """What a write settled: its first `taken` entries, of which `refused` were refused (the rest is in
    the lake: `parts`, holding the rows of `seqs`, ascending); the entries after them were left for the
    next batch (the partition cap)."""

    taken: int
    refused: Refused
    parts: list[PublishedPart] = []
    seqs: list[int] = []


class PartWriter:
    def __init__(self, lake: Path, db: duckdb.DuckDBPyConnection, max_partitions: int) -> None:
        self._lake = lake
        self._db = db
        self._max_partitions = max_partitions
        self._name_max = os.pathconf(lake, "PC_NAME_MAX")
        self._encoder = msgspec.json.Encoder()
        self._columns = {"k": "INTEGER", "wal_seq": "BIGINT", "event": event_struct()}
        select = select_list(quote("event"))
        self._copy = (
            f"COPY (SELECT k, {select} FROM read_ndjson(?, columns = ?)) "  # noqa: S608 - column names only
            "TO ? (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (k))"
        )
        # Per partition directory, the highest WAL seq in its parts. Only this writer adds parts, and
        # compaction and retention never raise it, so what was read once stays true.
        self._highest: dict[Path, int] = {}
        self._syncer = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="lake-fsync")

    def close(self) -> None:
        self._syncer.shutdown()

    def write(self, batch: list[Entry]) -> Written:
        """Write the entries of `batch` that the lake does not hold yet, up to the partition cap; returns
        how many were settled, and those of them it cannot take (an integer wider than its column, a
        service name too long for a directory), with the reasons.

        Raises OSError or duckdb.Error; the parts published before the failure stay, and count.
        """
        try:
            return self._write(batch)
        except duckdb.InvalidInputException:
            # Only once DuckDB has failed to convert a batch are its entries checked one by one: up
            # front, that would cost a tenth of every write, for values that hardly ever occur.
            misfits = Refused([], [])
            for entry in batch:
                if (problem := out_of_range(entry.event)) is not None:
                    misfits.entries.append(entry)
                    misfits.reasons.append(f"parquet sink: event {entry.event.event_id}: {problem}")
            if not misfits.entries:
                raise
            skip = {entry.lsn for entry in misfits.entries}
            fit = [entry for entry in batch if entry.lsn not in skip]
            taken_fit, refused, published, seqs = self._write(fit)
            taken = len(batch)
            if taken_fit < len(fit):  # misfits after the cut are the next batch's, found again there
                cut = fit[taken_fit].lsn
                taken = sum(entry.lsn < cut for entry in batch)
                before = [i for i, entry in enumerate(misfits.entries) if entry.lsn < cut]
                misfits = Refused([misfits.entries[i] for i in before], [misfits.reasons[i] for i in before])
            both = Refused(misfits.entries + refused.entries, misfits.reasons + refused.reasons)
            return Written(taken, both, published, seqs)

    def _write(self, batch: list[Entry]) -> Written:
        refused = Refused([], [])
        partitions: dict[tuple[date, str], _Partition] = {}
        rows = []
        repeats: dict[Path, list[Entry]] = {}  # entries skipped as in the lake, by partition directory
        opened = 0  # partitions this batch writes a part into
        taken = len(batch)
        for index, entry in enumerate(batch):
            moment = entry.event.timestamp
            if moment.tzinfo is not UTC:  # this test first: nearly every event is in UTC already
                moment = _as_utc(moment)
            # No service, an empty one and UNKNOWN_SERVICE share a directory, so they share a key: two
            # parts of one batch in one directory would have overlapping ranges.
            key = (moment.date(), entry.event.service_name or UNKNOWN_SERVICE)
            partition = partitions.get(key)
            if partition is None:
                partition = partitions[key] = self._partition(key, len(partitions))
            if entry.lsn <= partition.floor:
                repeats.setdefault(partition.directory, []).append(entry)
                continue
            if partition.unfit is not None:
                refused.entries.append(entry)
                refused.reasons.append(f"parquet sink: event {entry.event.event_id}: {partition.unfit}")
                continue
            if partition.first < 0:
                if opened == self._max_partitions:
                    taken = index
                    break
                opened += 1
                partition.first = entry.lsn
            partition.last = entry.lsn
            partition.rows += 1
            rows.append(_Row(partition.k, entry.lsn, entry.event))
        if repeats:
            clashing = self._clashing(repeats)
            refused = Refused(refused.entries + clashing.entries, refused.reasons + clashing.reasons)
        if not rows:
            return Written(taken, refused)
        published = self._copy_and_publish(rows, [p for p in partitions.values() if p.first >= 0])
        return Written(taken, refused, published, [row.wal_seq for row in rows])

    def _clashing(self, repeats: dict[Path, list[Entry]]) -> Refused:
        """Of the entries skipped as in the lake, those whose seq the parts of their partition hold for
        another event or none: refused, since the WAL issued their seq twice."""
        clashing = Refused([], [])
        for directory, entries in repeats.items():
            stored = self._stored_ids(directory, entries[0].lsn, entries[-1].lsn)
            if stored is None:
                continue
            for entry in entries:
                held = stored.get(entry.lsn)
                if held == entry.event.event_id:
                    continue
                where = f"for event {held}" if held else "for no event of its partition (another's)"
                clashing.entries.append(entry)
                clashing.reasons.append(
                    f"parquet sink: WAL seq {entry.lsn} is in the lake {where}, this is event "
                    f"{entry.event.event_id}"
                )
        if clashing.entries:
            logger.error(
                "parquet sink: %d entries carry seqs already written for other events (first: %s); the WAL "
                "issued seqs twice (its seq reservation was lost with its tail?). They go to dead letters",
                len(clashing.entries),
                clashing.reasons[0],
            )
        return clashing

    def _stored_ids(self, directory: Path, low: int, high: int) -> dict[int, str] | None:
        """Event id by WAL seq of the rows in `directory`'s parts between `low` and `high`; None when a
        part cannot be read."""
        files = [str(part.path) for part in parts(directory) if part.first <= high and part.last >= low]
        if not files:
            return {}
        try:
            rows = self._db.execute(
                "SELECT wal_seq, event_id FROM read_parquet(?) WHERE wal_seq BETWEEN ? AND ?",
                [files, low, high],
            ).fetchall()
        except duckdb.Error as exc:
            logger.warning(
                "parquet sink: %s: cannot read its parts to check the event ids of seqs %d-%d, skipped as "
                "already written (%s)",
                directory,
                low,
                high,
                exc,
            )
            return None
        return {seq: event_id for seq, event_id in rows}

    def _partition(self, key: tuple[date, str], k: int) -> _Partition:
        directory = partition_dir(self._lake, key[0].isoformat(), key[1])
        if len(os.fsencode(directory.name)) > self._name_max:
            unfit = f"service_name {key[1][:40]!r}... is too long for a directory name"
            return _Partition(directory, k, -1, unfit)
        if directory not in self._highest:
            found = parts(directory) if directory.is_dir() else []
            self._highest[directory] = max((part.last for part in found), default=-1)
        return _Partition(directory, k, self._highest[directory], None)

    def _copy_and_publish(self, rows: list[_Row], written: list[_Partition]) -> list[PublishedPart]:
        name = f"{STAGING_PREFIX}batch-{rows[0].wal_seq}-{rows[-1].wal_seq}"
        ndjson, staging = self._lake / f"{name}.ndjson", self._lake / name
        published = []
        try:
            _write_private(ndjson, self._encoder.encode_lines(rows))
            self._db.execute(self._copy, [str(ndjson), self._columns, str(staging)])
            files = [_only_file(staging / f"k={partition.k}", partition.directory) for partition in written]
            list(self._syncer.map(make_durable, files))  # each before its rename; raises the first error
            changed: set[Path] = set()
            for partition, file in zip(written, files, strict=True):
                changed.update(_make_dirs(partition.directory))
                target = partition.directory / part_name(partition.first, partition.last)
                # Hashed as it is published, for its digest: the file is in the page cache now.
                size, sha256 = sha256_file(file)
                file.rename(target)
                published.append(
                    PublishedPart(target, partition.first, partition.last, partition.rows, size, sha256)
                )
                self._highest[partition.directory] = partition.last
            list(self._syncer.map(fsync_directory, changed))
        finally:
            ndjson.unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
        return published


def make_durable(path: Path) -> None:
    """Make a finished file private, and its data durable."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchmod(fd, 0o600)
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(staging: Path, target: Path) -> None:
    """Make a finished file private and durable, then give it its final name in one step."""
    make_durable(staging)
    staging.rename(target)


def _only_file(directory: Path, partition: Path) -> Path:
    """The one file DuckDB wrote into `directory` for `partition`."""
    files = list(directory.iterdir())
    if len(files) != 1:
        # One file per partition is what a single-threaded COPY writes; anything else would need
        # another naming scheme, not a silent pick.
        raise OSError(f"DuckDB wrote {len(files)} files for {partition}, expected one")
    return files[0]


def remove_staging(lake: Path) -> list[Path]:
    """Delete what a write or a compaction cut short (by a crash) left under staging names."""
    leftovers = [*lake.glob(f"{STAGING_PREFIX}*"), *lake.glob(f"date=*/service=*/{STAGING_PREFIX}*")]
    for path in leftovers:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return leftovers


def _as_utc(moment: datetime) -> datetime:
    # A naive timestamp is taken to be UTC, as DuckDB (TimeZone = 'UTC') reads it into the part.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _make_dirs(directory: Path) -> list[Path]:
    """Create the partition directory (0700) and its date directory if missing; returns the
    directories whose entries changed, which are to be fsynced: it, and the parent of each one made."""
    changed = [directory]
    for path in (directory.parent, directory):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        changed.append(path.parent)
    return changed


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, _OPEN_FLAGS, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as file:
            file.write(data)
    finally:
        os.close(fd)
