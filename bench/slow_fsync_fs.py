"""A pass-through FUSE file system whose fsync and fdatasync take a set time, for `bench emit --ack`.

    /usr/bin/python3 bench/slow_fsync_fs.py MOUNTPOINT BACKING_DIR DELAY_MS

Every operation is done on BACKING_DIR's files as asked (an OSError becomes its errno, as fusepy
returns it); an fsync (of a file or a directory) sleeps
DELAY_MS first, then syncs. So a WAL mounted here costs what it would on a disk whose flush takes that
long (a network volume, a disk without a write cache), which this machine's virtual disk (~0.1 ms)
does not. Device-mapper's `delay` target would be the usual way; this kernel has no device-mapper.

A script for the system's Python, with Debian's python3-fusepy (`apt-get install python3-fusepy`,
which brings libfuse2), not a module of auditship: it imports nothing of the project. It runs in the
foreground with a thread per request, so a sleeping fsync holds up no other call.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from pathlib import Path
from typing import Any

try:
    import fusepy as fuse  # Debian's name for it
except ImportError:  # pip's
    import fuse  # type: ignore[no-redef]


class SlowFsync(fuse.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, backing: Path, delay_s: float) -> None:
        self.backing = backing
        self.delay_s = delay_s

    def _real(self, path: str) -> Path:
        return self.backing / path.lstrip("/")

    def access(self, path: str, amode: int) -> None:
        if not os.access(self._real(path), amode):
            raise fuse.FuseOSError(errno.EACCES)

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        status = os.fstat(fh) if fh is not None else self._real(path).lstat()
        names = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime_ns", "st_mtime_ns")
        attributes = {name.replace("_ns", ""): getattr(status, name) for name in names}
        attributes["st_ctime"] = status.st_ctime_ns
        return attributes

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *(entry.name for entry in self._real(path).iterdir())]

    def readlink(self, path: str) -> str:
        return str(self._real(path).readlink())

    def statfs(self, path: str) -> dict[str, int]:
        status = os.statvfs(self._real(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_frsize")
        return {key: getattr(status, key) for key in keys} | {"f_namemax": status.f_namemax}

    def mkdir(self, path: str, mode: int) -> None:
        self._real(path).mkdir(mode)

    def rmdir(self, path: str) -> None:
        self._real(path).rmdir()

    def unlink(self, path: str) -> None:
        self._real(path).unlink()

    def rename(self, old: str, new: str) -> None:
        self._real(old).rename(self._real(new))

    def link(self, target: str, source: str) -> None:
        os.link(self._real(source), self._real(target))

    def symlink(self, target: str, source: str) -> None:
        self._real(target).symlink_to(source)

    def chmod(self, path: str, mode: int) -> None:
        self._real(path).chmod(mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(self._real(path), uid, gid)

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        if times is None:
            os.utime(self._real(path))
        else:
            os.utime(self._real(path), ns=times)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._real(path), length)

    def open(self, path: str, flags: int) -> int:
        return os.open(self._real(path), flags)

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        return os.open(self._real(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return os.pwrite(fh, data, offset)

    def flush(self, path: str, fh: int) -> None:
        return None

    def release(self, path: str, fh: int) -> None:
        os.close(fh)

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        time.sleep(self.delay_s)
        (os.fdatasync if datasync else os.fsync)(fh)

    def fsyncdir(self, path: str, datasync: int, fh: int) -> None:
        time.sleep(self.delay_s)
        directory = os.open(self._real(path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def main(mountpoint: str, backing: str, delay_ms: str) -> None:
    fuse.FUSE(
        SlowFsync(Path(backing).resolve(), float(delay_ms) / 1000),
        mountpoint,
        foreground=True,
        nothreads=False,
        default_permissions=True,
        big_writes=True,
        max_write=128 * 1024,
        fsname="slow-fsync",
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
