"""A write that fails returns ERRORED and leaves no half batch; the batch goes through once later.

What is real and what is simulated: the file-size limit test makes the kernel itself refuse a write
midway (RLIMIT_FSIZE, EFBIG), the closest to a full disk an unprivileged test gets. ENOSPC, EIO on
fsync and a failing truncate are simulated by replacing os.write / os.fsync / os.ftruncate. A read-only
directory cannot stop root, so that test is skipped when the suite runs as root.
"""

import errno
import os
import resource
import signal
from contextlib import contextmanager

import pytest

from auditship.agents.errors import SinkError
from auditship.agents.sinks.base import Delivery
from auditship.ondisk.lines import decode_json_line
from shipper.event import AuditEvent
from tests.agents.sinks.entries import entries

REAL_WRITE = os.write


def seqs(path):
    return [decode_json_line(line, AuditEvent)[0] for line in path.read_bytes().splitlines()]


@contextmanager
def file_size_limit(limit):
    """Let this process write no file past `limit` bytes: writes beyond it fail with EFBIG."""
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else SIGXFSZ kills the process
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)


def test_a_write_the_kernel_refuses_midway_is_cut_back_and_errored(open_sink, keyring, caplog):
    """Under a file-size limit the batch is half written, then refused: the sink cuts the file back to
    its size before the batch, says ERRORED with the errno and the consequence, and writes the batch
    whole (once) when it is offered again."""
    sink = open_sink()
    sink.write_batch(entries(range(1, 6), keyring))
    before = sink.path.stat().st_size

    with file_size_limit(before + 300):
        outcome = sink.write_batch(entries(range(6, 11), keyring))

    assert outcome is Delivery.ERRORED
    assert sink.path.stat().st_size == before
    assert "EFBIG" in caplog.text
    assert "batch 6-10 stays in the WAL and is retried" in caplog.text
    assert sink.write_batch(entries(range(6, 11), keyring)) is Delivery.DELIVERED
    assert seqs(sink.path) == list(range(1, 11))


def test_a_full_disk_is_errored_with_its_errno(open_sink, keyring, monkeypatch, caplog):
    """ENOSPC after part of the batch is written: ERRORED, ENOSPC in the log, no partial line left."""
    sink = open_sink()
    sink.write_batch(entries(range(1, 3), keyring))
    before = sink.path.read_bytes()

    def half_then_full(fd, data):
        if len(data) > 100:
            return REAL_WRITE(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    assert sink.write_batch(entries(range(3, 8), keyring)) is Delivery.ERRORED
    monkeypatch.undo()

    assert sink.path.read_bytes() == before
    assert "ENOSPC" in caplog.text


def test_a_failed_fsync_is_errored_and_cut_back(open_sink, keyring, monkeypatch):
    """EIO from fsync means the bytes may not be on disk: ERRORED, and the file is cut back."""
    sink = open_sink(fsync=True)
    sink.write_batch(entries(range(1, 3), keyring))
    before = sink.path.stat().st_size

    def failing_fsync(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    assert sink.write_batch(entries(range(3, 5), keyring)) is Delivery.ERRORED
    monkeypatch.undo()
    assert sink.path.stat().st_size == before


def test_fsync_false_does_not_fsync_batches(open_sink, keyring, monkeypatch):
    """With fsync = false a batch is delivered without an fsync (the kernel's cache is trusted)."""
    sink = open_sink(fsync=False)
    calls = []
    monkeypatch.setattr(os, "fsync", calls.append)
    assert sink.write_batch(entries(range(1, 3), keyring)) is Delivery.DELIVERED
    assert calls == []


def test_when_even_the_cut_back_fails_the_next_batch_rereads_the_file(open_sink, keyring, monkeypatch):
    """A half-written batch that cannot be truncated away: the sink reopens the file on the next batch,
    cuts the torn line, counts the whole lines as written and writes only the rest."""
    sink = open_sink()
    sink.write_batch(entries(range(1, 3), keyring))

    def half_then_fail(fd, data):
        if len(data) > 100:
            return REAL_WRITE(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    def failing_truncate(fd, size):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "write", half_then_fail)
    monkeypatch.setattr(os, "ftruncate", failing_truncate)
    batch = entries(range(3, 9), keyring)
    assert sink.write_batch(batch) is Delivery.ERRORED
    monkeypatch.undo()

    assert sink.write_batch(batch) is Delivery.DELIVERED
    assert seqs(sink.path) == list(range(1, 9))


def test_a_current_file_that_cannot_be_opened_is_named(data_dir, open_sink):
    """A symlink in place of the current file is refused (O_NOFOLLOW); the error names it."""
    files = data_dir / "files"
    files.mkdir(parents=True)
    (files / "audit.jsonl").symlink_to(data_dir / "elsewhere.jsonl")
    with pytest.raises(SinkError, match=r"cannot open .*files/audit\.jsonl"):
        open_sink()
    assert not (data_dir / "elsewhere.jsonl").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_rotation_that_fails_still_delivers(open_sink, keyring, data_dir, caplog):
    """In a read-only directory the rename fails; the batch is on disk, so it is still DELIVERED."""
    sink = open_sink(max_file_size=500)
    (data_dir / "files").chmod(0o500)
    try:
        assert sink.write_batch(entries(range(1, 6), keyring)) is Delivery.DELIVERED
    finally:
        (data_dir / "files").chmod(0o700)
    assert "cannot rotate" in caplog.text
    assert seqs(sink.path) == list(range(1, 6))


def test_a_rotation_whose_rename_fails_still_delivers(open_sink, keyring, monkeypatch, caplog):
    """(Simulated, so it runs as root too.) The rename of a full file fails: the batch is on disk, so
    it is DELIVERED, the file keeps growing, and the next batch tries the rotation again."""
    sink = open_sink(max_file_size=500)

    def failing_rename(self, target):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(type(sink.path), "rename", failing_rename)
    assert sink.write_batch(entries(range(1, 6), keyring)) is Delivery.DELIVERED
    monkeypatch.undo()

    assert "cannot rotate" in caplog.text
    assert seqs(sink.path) == list(range(1, 6))
    assert sink.write_batch(entries(range(6, 7), keyring)) is Delivery.DELIVERED
    assert sink.path.stat().st_size == 0  # rotated at last
