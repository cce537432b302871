"""A writer in another process appends (and rolls, and collects, and is killed) while a reader reads."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path

from auditship.agents.config import WalConfig
from auditship.agents.wal import WalReader, WalRecord, WriteAheadLog
from auditship.agents.wal.record import LSN
from auditship.agents.wal.reservation import read_reservation
from shipper.records import encode_record
from tests.agents.wal.sample import payload_for, segment_files

DEADLINE_S = 120.0
MAX_READS = 2_000_000


def size_for(number: int) -> int:
    """Payload sizes vary; now and then one is larger than a reader's read chunk (1 MiB)."""
    return 1_200_000 if number % 9973 == 0 else 40 + (number * 7919) % 1000


def expected(number: int) -> bytes:
    return payload_for(number, size_for(number))


def write_records(directory: str, last: int, seconds: float) -> None:
    """The child: append numbered payloads up to seq `last` (or for `seconds`) in batches of varied
    size, rolling small segments, pausing while the WAL is over its bound as the intake does, and
    collecting what the reader has committed."""
    config = WalConfig(fsync="never", segment_bytes=64 * 1024, max_bytes=4 * 1024 * 1024)
    wal = WriteAheadLog(Path(directory), config, ["reader"])
    rng = random.Random(wal.next_lsn)
    deadline = time.monotonic() + seconds
    while wal.next_lsn <= last and time.monotonic() < deadline:
        if wal.over_limit():
            wal.collect()
            time.sleep(0.001)  # backpressure: the reader must commit before more can go in
            continue
        first = wal.next_lsn
        count = min(rng.randint(1, 300), last - first + 1)
        wal.append([expected(n) for n in range(first, first + count)])
    wal.close()


def start_writer(directory: Path, last: int, seconds: float = 60.0) -> BaseProcess:
    process = multiprocessing.get_context("spawn").Process(
        target=write_records, args=(str(directory), last, seconds), daemon=True
    )
    process.start()
    return process


class CheckingReader:
    """Reads as a sink worker does and checks every record: the next seq, the payload it was given."""

    def __init__(self, directory: Path) -> None:
        self.reader = WalReader(directory, "reader")
        self.rng = random.Random(1)
        self.reads = 0
        self.resumes_at: int | None = None
        """Where a writer restarted after a kill goes on: past its unused reservation, the one gap."""

    def step(self) -> list[WalRecord]:
        self.reads += 1
        assert self.reads < MAX_READS, f"{self.reads} reads, still at seq {self.reader.position}"
        start = self.reader.position
        batch = self.reader.read(self.rng.randint(1, 500), 256 * 1024)
        expected_seq = start + 1
        for record in batch:
            if record.lsn != expected_seq and record.lsn == self.resumes_at:
                self.resumes_at = None
                expected_seq = record.lsn
            assert record.lsn == expected_seq, f"after seq {expected_seq - 1} came seq {record.lsn}"
            expected_seq += 1
            assert record.payload == expected(record.lsn), f"seq {record.lsn} has the wrong payload"
        if batch and self.rng.random() < 0.1:  # a failed delivery: the same batch must come again
            self.reader.rewind()
            assert self.reader.read(len(batch), 256 * 1024) == batch
        if batch:
            self.reader.commit(batch[-1].lsn)
        return batch

    def read_until(self, done: Callable[[], bool], deadline: float) -> None:
        while not done():
            assert time.monotonic() < deadline, f"timed out at seq {self.reader.position}"
            self.step()


def test_a_reader_in_another_process_gets_every_record_once_in_order(wal_dir: Path) -> None:
    """While the writer appends, rolls segments every 64 KiB and deletes what the reader committed, the
    reader never returns a partial record, never skips one and never repeats one (rewinds aside)."""
    last = 50_000
    writer = start_writer(wal_dir, last)
    checking = CheckingReader(wal_dir)
    checking.read_until(lambda: checking.reader.position == last, time.monotonic() + DEADLINE_S)
    writer.join(timeout=30)
    assert writer.exitcode == 0
    assert checking.step() == []
    checking.reader.close()


def test_a_writer_killed_mid_write_and_restarted_loses_nothing_the_reader_sees(wal_dir: Path) -> None:
    """kill -9 of the writer at any moment, plus a torn record at the end of its segment (kill -9 does
    not cut a write() short, a power cut can): the reader waits (a torn tail is "not yet"), the
    restarted writer cuts it off and goes on after its reservation of seqs, and the reader follows with
    no other gap, no repeat and no partial record."""
    deadline = time.monotonic() + DEADLINE_S
    first_writer = start_writer(wal_dir, last=10**9)
    checking = CheckingReader(wal_dir)
    checking.read_until(lambda: checking.reader.position >= 20_000, deadline)
    os.kill(first_writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
    first_writer.join(timeout=30)
    assert first_writer.exitcode == -signal.SIGKILL
    with segment_files(wal_dir)[-1].open("ab") as segment:
        segment.write(encode_record(LSN.pack(10**8) + b"never completed")[:12])
    checking.read_until(lambda: checking.step() == [], deadline)
    checking.resumes_at = read_reservation(wal_dir) + 1
    last = checking.resumes_at + 30_000
    second_writer = start_writer(wal_dir, last)
    checking.read_until(lambda: checking.reader.position == last, deadline)
    second_writer.join(timeout=30)
    assert second_writer.exitcode == 0
    checking.reader.close()
