"""`python -m bench verify`: how fast `audit-query verify` checks a data directory, in MB/s of files and
lake (the bytes of the objects it verifies, over its whole run: chains, hashes, the lake's continuity).
Target: >= 300 MB/s.

The data is written by the sinks themselves, with their digests on (FileSink with FileDigests, ParquetSink
with LakeDigests, in this process): `--events` events of 10 services over 10 days, in batches as the
runner offers them, the file rotated at its default size and compressed. Then verify runs `--rounds`
times, warm (the files in the page cache, as right after writing) and cold (each file's pages dropped
first with posix_fadvise, so it reads from the disk); the median of each is printed.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from auditship.agents.config import IntegrityConfig
from auditship.agents.crypto import Keyring, encrypt_sensitive
from auditship.agents.integrity.chain import ChainWriter
from auditship.agents.integrity.signing import Signer
from auditship.agents.sinks.base import Delivery, Entry
from auditship.agents.sinks.file.config import FileSinkConfig
from auditship.agents.sinks.file.digests import FileDigests
from auditship.agents.sinks.file.sink import FileSink
from auditship.agents.sinks.parquet.config import ParquetSinkConfig
from auditship.agents.sinks.parquet.digests import LakeDigests
from auditship.agents.sinks.parquet.sink import ParquetSink
from auditship.query.verify.run import verify
from shipper.event import AuditEvent, AuditEventType

SERVICES, DAYS = 10, 10
BATCH = 100_000
TARGET_MB_S = 300


def run(events: int, rounds: int, keep: Path | None) -> None:
    root = keep or Path(tempfile.mkdtemp(prefix="as-bench-verify-"))
    data, keys = root / "data", root / "keys"
    try:
        started = time.perf_counter()
        write(data, keys, events)
        size = sum(path.stat().st_size for path in _objects(data))
        print(
            f"verify: {events:,} events written by the file and parquet sinks with digests in "
            f"{time.perf_counter() - started:.1f}s: {size / 1e6:,.1f} MB of files and parts"
        )
        for label, cold in (("warm", False), ("cold", True)):
            rates = []
            for _ in range(rounds):
                if cold:
                    _drop_cache(data)
                report = verify(data, keys)
                if not report.ok:
                    raise SystemExit(f"verify found problems in the bench's own data: {report.summary}")
                rates.append(report.summary.bytes_hashed / 1e6 / report.summary.seconds)
            print(
                f"  {label}: median {statistics.median(rates):,.0f} MB/s, best {max(rates):,.0f} MB/s "
                f"(target {TARGET_MB_S}); {report.summary.digests} digests, {report.summary.objects} objects"
            )
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def write(data: Path, keys: Path, events: int) -> None:
    """`events` through both sinks, as their runners would offer them, digests on."""
    keyring = Keyring.load_or_create(keys)
    signer = Signer.load_or_create(keys)
    settings = IntegrityConfig()
    file_config = FileSinkConfig(fsync=False)
    current = data / file_config.path
    file_digests = FileDigests(
        ChainWriter(data, "file", signer, keys), settings, data, current, compressed=True
    )
    file = FileSink(file_config, data, keyring, file_digests)
    lake_config = ParquetSinkConfig(compaction=False, max_partitions=SERVICES * DAYS)
    lake_digests = LakeDigests(
        ChainWriter(data, "parquet", signer, keys), settings, data, data / lake_config.path
    )
    lake = ParquetSink(lake_config, data, keyring, digests=lake_digests)
    file.open()
    lake.open()
    try:
        for batch in _batches(events, keyring):
            for sink in (file, lake):
                if sink.write_batch(batch) is not Delivery.DELIVERED:
                    raise SystemExit(f"the {sink.name} sink did not take a batch")
    finally:
        file.close()
        lake.close()


def _batches(events: int, keyring: Keyring) -> Iterator[list[Entry]]:
    start = datetime.now(UTC) - timedelta(days=DAYS)
    step = timedelta(days=DAYS) / max(events, 1)
    for first in range(1, events + 1, BATCH):
        yield [
            Entry(
                seq,
                encrypt_sensitive(
                    AuditEvent(
                        event_type=AuditEventType.DATA_READ,
                        timestamp=start + step * seq,
                        user_id=f"user{seq % 5000}",
                        source_ip=f"10.0.{seq % 256}.{seq % 199}",
                        resource_type="patient_record",
                        resource_id=str(seq),
                        service_name=f"svc-{seq % SERVICES}",
                        environment="production",
                        request_id=f"req-{seq}",
                        details={"n": seq, "fields": ["diagnosis", "treatment"]},
                        sensitive={"patient_name": "Jane Doe"} if seq % 10 == 0 else {},
                        compliance=["HIPAA"],
                    ),
                    keyring,
                ),
            )
            for seq in range(first, min(first + BATCH, events + 1))
        ]


def _objects(data: Path) -> list[Path]:
    return [
        path for path in (*(data / "files").iterdir(), *(data / "lake").rglob("*.parquet")) if path.is_file()
    ]


def _drop_cache(data: Path) -> None:
    """Each file's pages out of the page cache (clean pages, just written back), so they read from disk."""
    os.sync()
    for path in data.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
