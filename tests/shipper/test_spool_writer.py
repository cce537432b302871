"""The spool writer: a write the disk cuts short leaves nothing torn behind, and a bounded spool (the
overflow spool on a shared tmpfs) refuses what would pass its bounds."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auditship.agents.crypto.spool_unseal import Unsealer
from auditship.ondisk.errors import DecryptionError
from shipper.records import Tail, classify_tail, scan_records
from shipper.spool_seal import SealUnavailableError
from shipper.spool_writer import PLAIN, SEALED, SpoolWriter
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


def _publish(directory: Path, key: X25519PrivateKey) -> None:
    """As the agent does at start: seal.pub replaced in one rename."""
    staged = directory / "seal.pub.new"
    staged.write_bytes(key.public_key().public_bytes_raw())
    staged.replace(directory / "seal.pub")


def test_a_writer_seals_to_the_key_the_agent_published_last_looking_again_once_a_second(
    tmp_path: Path,
) -> None:
    """A key in place when the writer first sealed (say one a group member planted), then the agent's
    own, published as at its start: within the second the writer keeps the first; after it, every
    sensitive record is sealed to the new key, which opens it, and the first key opens none of them."""
    first, second = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    now = [100.0]
    _publish(tmp_path, first)
    writer = SpoolWriter(tmp_path, "e4", clock=lambda: now[0])
    writer.write([(b"before", True)])
    _publish(tmp_path, second)
    now[0] += 0.5
    writer.write([(b"within the second", True)])
    now[0] += 1.0
    writer.write([(b"after", True), (b"after, plain", False)])
    writer.close()
    records = _records(writer.path)
    assert [record[:1] for record in records] == [SEALED, SEALED, SEALED, PLAIN]
    assert [Unsealer(first).unseal(r[1:]) for r in records[:2]] == [b"before", b"within the second"]
    assert Unsealer(second).unseal(records[2][1:]) == b"after"
    with pytest.raises(DecryptionError):
        Unsealer(first).unseal(records[2][1:])


def test_a_key_file_gone_for_a_moment_leaves_the_last_key_in_use_and_none_ever_read_is_an_error(
    tmp_path: Path,
) -> None:
    """No seal.pub yet: a sensitive record cannot be written (the emitter holds it). Once one was read,
    its removal does not stop sealing."""
    now = [0.0]
    writer = SpoolWriter(tmp_path, "e5", clock=lambda: now[0])
    with pytest.raises(SealUnavailableError, match="no agent key"):
        writer.write([(b"secret", True)])
    key = X25519PrivateKey.generate()
    _publish(tmp_path, key)
    writer.write([(b"secret", True)])
    (tmp_path / "seal.pub").unlink()
    now[0] += 5
    writer.write([(b"still sealed", True)])
    writer.close()
    assert [Unsealer(key).unseal(r[1:]) for r in _records(writer.path)] == [b"secret", b"still sealed"]
