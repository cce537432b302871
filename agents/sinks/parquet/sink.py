"""The Parquet sink: the lake that audit-query searches, under data_dir/lake/ (ondisk/lake_layout.py).

The runner batches (`max_rows` events, or whatever arrived within `flush_interval_s`); each batch
becomes one part per (date, service) partition it touches (writer.py), and is DELIVERED only once every
one of them is renamed into place and fsynced. Writing is idempotent by WAL range, so a batch offered
again after a crash or an ERRORED attempt adds only what is missing. A batch that would write into more
than `max_partitions` partitions is cut (writer.py): the sink returns Partial, and the runner offers the
rest at once as the next batch (counted in `deferred`). Between batches, at most once a
minute, the sink compacts the lake (compaction.py).

Sensitive values arrive encrypted by the intake and are written as they are; `encrypt_sensitive` runs
again as a guard (free for envelopes), so a plaintext value cannot reach a part through a bug upstream.
An event the lake cannot take (an integer wider than its column, a service name too long for a
directory) is refused, and the runner dead-letters it with the reason; the rest of its batch is written.
A part that compaction finds DuckDB cannot read is moved to the quarantine (compaction.py), logged, and
counted (`quarantined_parts` in `audit-agent status`).

With `[integrity]` on, every part written or merged, and every part quarantined, goes into the sink's
signed digests (digests.py), and the sink writes a final digest when it stops.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import duckdb

from auditship.agents.config import AgentConfig
from auditship.agents.crypto import Keyring, encrypt_sensitive
from auditship.agents.errors import SinkError
from auditship.agents.integrity.chain import ChainWriter
from auditship.agents.integrity.signing import Signer
from auditship.agents.sinks.base import BuiltSink, Delivery, Entry, Partial, Refused, Sink
from auditship.agents.sinks.parquet.compaction import CompactionPolicy, Compactor
from auditship.agents.sinks.parquet.config import ParquetSinkConfig
from auditship.agents.sinks.parquet.digests import LakeDigests
from auditship.agents.sinks.parquet.writer import PartWriter, remove_staging
from auditship.ondisk.data_layout import DataLayout
from auditship.ondisk.errors import AuditshipError

logger = logging.getLogger("auditship.sinks.parquet")


class ParquetSink(Sink):
    name = "parquet"

    def __init__(
        self,
        config: ParquetSinkConfig,
        data_dir: Path,
        keyring: Keyring,
        policy: CompactionPolicy | None = None,
        digests: LakeDigests | None = None,
    ) -> None:
        self._lake = data_dir / config.path  # an absolute config.path stays as it is
        self._keyring = keyring
        self._digests = digests
        self._compaction = config.compaction
        self._max_partitions = config.max_partitions
        self._policy = policy or CompactionPolicy()
        self._db: duckdb.DuckDBPyConnection | None = None
        self._writer: PartWriter | None = None
        self._compactor: Compactor | None = None
        self._compact_at = 0.0

    @property
    def lake(self) -> Path:
        return self._lake

    @property
    def counters(self) -> dict[str, int]:
        """Reported by the runner: the unreadable parts compaction moved to the quarantine since the sink
        opened."""
        return {"quarantined_parts": self._compactor.quarantined if self._compactor is not None else 0}

    def open(self) -> None:
        try:
            self._lake.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._lake.chmod(0o700)
            leftovers = remove_staging(self._lake)
        except OSError as exc:
            raise SinkError(
                f"parquet sink: cannot prepare {exc.filename or self._lake}: {exc.strerror}"
            ) from exc
        if leftovers:
            logger.info(
                "parquet sink: removed %d staging files a crash left in %s; their rows are still in "
                "the WAL (and are written again) or in the parts a compaction was merging",
                len(leftovers),
                self._lake,
            )
        # One thread: a single-threaded COPY writes exactly one file per partition (writer.py), keeps
        # rows in WAL order, and leaves the host's other cores to the intake and the other sinks.
        self._db = duckdb.connect(config={"threads": 1})
        self._db.execute("SET TimeZone = 'UTC'")
        self._writer = PartWriter(self._lake, self._db, self._max_partitions)
        if self._digests is not None:
            try:
                self._digests.start(self._db)
            except (OSError, duckdb.Error, AuditshipError) as exc:  # the worker is restarted, and tries again
                raise SinkError(f"parquet sink: cannot go on with its digests: {exc}") from exc
        if self._compaction:
            self._compactor = Compactor(self._lake, self._db, self._policy, self._digests)

    def tick(self) -> None:
        if self._digests is not None:
            self._digests.tick()

    def close(self) -> None:
        if self._digests is not None:
            self._digests.close()
        if self._writer is not None:
            self._writer.close()
        if self._db is not None:
            self._db.close()
            self._db = self._writer = self._compactor = None

    def write_batch(self, batch: list[Entry]) -> Delivery | Refused | Partial:
        if self._writer is None or self._db is None:
            raise RuntimeError("parquet sink: write_batch before open")
        try:
            taken, refused, published, seqs = self._writer.write([self._sealed(entry) for entry in batch])
        except (OSError, duckdb.Error) as exc:
            if self._digests is not None:
                self._digests.failed()
            logger.error(
                "parquet sink: writing batch %d-%d to %s failed: %s; it stays in the WAL and is retried "
                "(parts already in place are not written twice)",
                batch[0].lsn,
                batch[-1].lsn,
                self._lake,
                exc,
            )
            return Delivery.ERRORED
        if self._digests is not None:
            self._digests.wrote(published, seqs)
        self._compact_if_due()
        if taken < len(batch):
            return Partial(taken, refused)
        return refused if refused.entries else Delivery.DELIVERED

    def _sealed(self, entry: Entry) -> Entry:
        event = encrypt_sensitive(entry.event, self._keyring)
        return entry if event is entry.event else Entry(entry.lsn, event)

    def _compact_if_due(self) -> None:
        if self._compactor is None or time.monotonic() < self._compact_at:
            return
        self._compact_at = time.monotonic() + self._policy.interval_s
        try:
            done = self._compactor.run()
        except (OSError, duckdb.Error) as exc:  # the events are safe in their parts whatever happens here
            logger.warning(
                "parquet sink: compacting %s failed: %s; the parts stay as they are, tried again in %.0fs",
                self._lake,
                exc,
                self._policy.interval_s,
            )
            return
        if done.merged or done.deleted:
            logger.info(
                "parquet sink: compacted %d parts into %d; deleted %d parts compacted earlier",
                done.merged,
                done.into,
                done.deleted,
            )


def build(config: AgentConfig) -> BuiltSink:
    layout = DataLayout(config.data_path)
    settings = config.sinks.parquet
    digests = None
    if config.integrity.enabled:
        writer = ChainWriter(layout.root, "parquet", Signer.load(config.keys_path), config.keys_path)
        digests = LakeDigests(writer, config.integrity, layout.root, layout.root / settings.path)
    sink = ParquetSink(settings, layout.root, Keyring.load_or_create(config.keys_path), digests=digests)
    return BuiltSink(sink, settings.max_rows, settings.flush_interval_s)
