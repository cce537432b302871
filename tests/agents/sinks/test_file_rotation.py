"""Past max_file_size the file is closed, named by its WAL range, compressed, and old ones pruned;
a rotation a crash interrupted is finished on the next open."""

import gzip

import pytest
import zstandard

from auditship.agents.sinks.base import Delivery, Refused
from auditship.ondisk.file_sink import closed_files, read_lines
from auditship.ondisk.lines import decode_json_line
from shipper.event import AuditEvent
from tests.agents.sinks.entries import entries


def write_in_batches(sink, keyring, last, size=5):
    for start in range(1, last + 1, size):
        sink.write_batch(entries(range(start, min(start + size, last + 1)), keyring))


def names(directory):
    return sorted(path.name for path in directory.iterdir())


def all_seqs(directory):
    seqs = []
    for closed in closed_files(directory, "audit"):
        seqs += [decode_json_line(line, AuditEvent)[0] for line in read_lines(closed.path)]
    return seqs + [decode_json_line(line, AuditEvent)[0] for line in read_lines(directory / "audit.jsonl")]


@pytest.mark.parametrize(("compression", "suffix"), [("zstd", ".zst"), ("gzip", ".gz"), ("none", "")])
def test_rotation_closes_names_and_compresses(open_sink, keyring, data_dir, compression, suffix):
    """Each closed file is audit-<first>-<last>.jsonl plus the compression's suffix, and together with
    the current file they hold every event once, in order."""
    sink = open_sink(max_file_size=3_000, compression=compression, max_files=100)
    write_in_batches(sink, keyring, 60)
    files = data_dir / "files"

    closed = closed_files(files, "audit")
    assert len(closed) >= 3
    for item in closed:
        assert item.path.name == f"audit-{item.first_seq}-{item.last_seq}.jsonl{suffix}"
    assert all_seqs(files) == list(range(1, 61))
    assert not [name for name in names(files) if name.endswith(".tmp")]


def test_compressed_files_are_real_zstd_and_gzip(open_sink, keyring, data_dir):
    """The .zst and .gz files open with the standard tools' libraries, not only with ours."""
    sink = open_sink(max_file_size=1_000, compression="zstd")
    write_in_batches(sink, keyring, 10)
    (zst,) = [c.path for c in closed_files(data_dir / "files", "audit")][:1]
    assert zstandard.ZstdDecompressor().decompressobj().decompress(zst.read_bytes()).count(b"\n") == 5

    sink.close()
    other = open_sink(path="gz/audit.jsonl", max_file_size=1_000, compression="gzip")
    write_in_batches(other, keyring, 10)
    (gz,) = [c.path for c in closed_files(data_dir / "gz", "audit")][:1]
    assert gzip.decompress(gz.read_bytes()).count(b"\n") == 5


def test_only_max_files_closed_files_are_kept(open_sink, keyring, data_dir):
    """The oldest closed files beyond max_files are deleted; the newest ones and the current stay."""
    sink = open_sink(max_file_size=1_000, max_files=2)
    write_in_batches(sink, keyring, 40)
    closed = closed_files(data_dir / "files", "audit")
    assert len(closed) == 2
    assert closed[-1].last_seq == 40
    assert (data_dir / "files" / "audit.jsonl").exists()


def test_the_text_format_rotates_to_log_files(open_sink, keyring, data_dir):
    """Closed text-format files are named .log (then compressed)."""
    sink = open_sink(line_format="text", max_file_size=1_000)
    write_in_batches(sink, keyring, 10)
    assert [name for name in names(data_dir / "files") if name.endswith(".log.zst")]
    assert all(name.endswith(".log.zst") for name in names(data_dir / "files") if name != "audit.jsonl")


def test_after_rotation_old_batches_are_still_recognised_as_written(open_sink, keyring, data_dir):
    """With the current file empty after a rotation, the newest closed file's name says what was
    written: offering those batches again writes nothing."""
    made = entries(range(1, 16), keyring)
    sink = open_sink(max_file_size=1_000)
    for start in range(0, 10, 5):
        sink.write_batch(made[start : start + 5])
    sink.close()
    assert (data_dir / "files" / "audit.jsonl").stat().st_size == 0

    again = open_sink(max_file_size=1_000)
    for start in range(0, 15, 5):
        assert again.write_batch(made[start : start + 5]) is Delivery.DELIVERED
    assert all_seqs(data_dir / "files") == list(range(1, 16))


def test_a_seq_a_compressed_closed_file_holds_for_another_event_is_refused_after_a_reopen(
    open_sink, keyring, data_dir
):
    """The check reads closed, compressed files back too: after rotations and a reopen, repeats of the
    events they hold are skipped, and another event under one of their seqs is refused."""
    made = entries(range(1, 16), keyring)
    sink = open_sink(max_file_size=1_000)
    for start in range(0, 15, 5):
        sink.write_batch(made[start : start + 5])
    sink.close()
    assert [c.path.suffix for c in closed_files(data_dir / "files", "audit")] == [".zst"] * 3

    again = open_sink(max_file_size=1_000)
    (impostor,) = entries(range(7, 8), keyring)
    outcome = again.write_batch([made[5], impostor, made[7]])
    assert isinstance(outcome, Refused)
    assert outcome.entries == [impostor]
    assert all_seqs(data_dir / "files") == list(range(1, 16))


def test_a_seq_whose_file_was_deleted_past_max_files_is_taken_as_written(open_sink, keyring, data_dir):
    """What the files no longer hold cannot be checked: an entry under such a seq is skipped, as any
    entry at or below the last seq written was before the check."""
    sink = open_sink(max_file_size=1_000, max_files=1)
    write_in_batches(sink, keyring, 20)
    assert closed_files(data_dir / "files", "audit")[0].first_seq > 1
    assert sink.write_batch(entries(range(1, 3), keyring)) is Delivery.DELIVERED


def test_an_interrupted_compression_is_finished_on_open(open_sink, keyring, data_dir):
    """A crash mid-compression leaves a plain closed file and a partial .tmp: open compresses the
    first and removes the second."""
    sink = open_sink(max_file_size=10**9)
    write_in_batches(sink, keyring, 10)
    sink.close()
    files = data_dir / "files"
    (files / "audit.jsonl").rename(files / "audit-1-10.jsonl")
    (files / "audit-1-10.jsonl.zst.tmp").write_bytes(b"\x28\xb5\x2f\xfd partial")

    open_sink()
    assert names(files) == ["audit-1-10.jsonl.zst", "audit.jsonl"]
    assert all_seqs(files) == list(range(1, 11))


def test_a_crash_before_the_original_was_removed_keeps_one_copy(open_sink, keyring, data_dir):
    """When both the plain and the compressed closed file exist, open removes the plain one."""
    sink = open_sink(max_file_size=10**9, compression="none")
    write_in_batches(sink, keyring, 10)
    sink.close()
    files = data_dir / "files"
    plain = files / "audit-1-10.jsonl"
    (files / "audit.jsonl").rename(plain)
    (files / "audit-1-10.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(plain.read_bytes()))

    open_sink()
    assert names(files) == ["audit-1-10.jsonl.zst", "audit.jsonl"]


def test_an_oversized_current_file_is_rotated_on_open(open_sink, keyring, data_dir):
    """A crash between a write and its rotation is caught up when the sink opens."""
    sink = open_sink(max_file_size=10**9)
    write_in_batches(sink, keyring, 10)
    sink.close()
    open_sink(max_file_size=100)
    assert names(data_dir / "files") == ["audit-1-10.jsonl.zst", "audit.jsonl"]
