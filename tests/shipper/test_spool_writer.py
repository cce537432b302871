"""The spool writer: a write the disk cuts short leaves nothing torn behind, and a bounded spool (the
overflow spool on a shared tmpfs) refuses what would pass its bounds."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from shipper.records import Tail, classify_tail, scan_records
from shipper.spool_writer import SpoolWriter
from tests.services import require


def _records(path: Path) -> list[bytes]:
    data = path.read_bytes()
    offset = 0
    records = []
    for offset, payload in scan_records(data):  # noqa: B007 - offset is read after the loop
        records.append(payload)
    assert classify_tail(data, offset) is Tail.CLEAN
    return records


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
    mounted = os.geteuid() == 0 and subprocess.run(command, check=False).returncode == 0
    require(mounted, "mounting a tmpfs needs root (CI has it)")


def test_a_write_cut_short_by_a_full_disk_is_cut_off_and_later_records_read_back(tmp_path: Path) -> None:
    """On a 1 MiB tmpfs: batches until ENOSPC, then space freed, then one more batch: every batch the
    writer said it wrote reads back, the refused one is not there, and no torn record sits between."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "1m")
    try:
        ballast = disk / "ballast"
        ballast.write_bytes(b"\0" * 200_000)
        writer = SpoolWriter(disk, "e1")
        batch = [(b"x" * 1000, False)] * 50
        written = 0
        for _ in range(100):  # 100 x 50 KB > 1 MiB: ends with ENOSPC
            try:
                writer.write(batch)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
            written += len(batch)
        else:
            pytest.fail("the disk never filled")
        ballast.unlink()
        writer.write(batch)
        writer.close()
        assert len(_records(writer.path)) == written + len(batch)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_bounded_spool_refuses_what_would_pass_its_size(tmp_path: Path) -> None:
    """max_bytes: the write that would take the file past it fails with ENOSPC and writes nothing."""
    writer = SpoolWriter(tmp_path, "e2", max_bytes=5_000)
    writer.write([(b"a" * 1000, False)] * 4)
    with pytest.raises(OSError, match="at its bound") as refused:
        writer.write([(b"b" * 1000, False)] * 2)
    assert refused.value.errno == errno.ENOSPC
    writer.close()
    assert len(_records(writer.path)) == 4


def test_a_spool_file_gets_the_group_of_its_directory(tmp_path: Path) -> None:
    """Without a setgid directory (the overflow spool), the writer gives its file the directory's group,
    which is how the agent reads it."""
    group = 1234
    os.chown(tmp_path, -1, group)
    writer = SpoolWriter(tmp_path, "e3")
    writer.write([(b"c", False)])
    writer.close()
    status = writer.path.stat()
    assert (status.st_gid, status.st_mode & 0o777) == (group, 0o640)
