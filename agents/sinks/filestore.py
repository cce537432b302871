"""The file sink's side of its directory: compressing a closed file, and reading back what it wrote.

The names and the readers the sink shares with `audit-query` are in ondisk/file_sink.py.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import zstandard

from auditship.agents.durable import fsync_directory
from auditship.ondisk.file_sink import (
    CHUNK,
    SUFFIXES,
    Compression,
    CorruptFileError,
    closed_files,
    read_lines,
)
from auditship.ondisk.lines import seq_and_id_of_line

log = logging.getLogger("auditship.sinks.file")
_TAIL_BLOCK = 64 * 1024


class Compressed(NamedTuple):
    path: Path
    content_sha256: str
    """Of what was compressed: the digests compare it with what the sink wrote (file/digests.py)."""


def compress(path: Path, compression: Compression, *, durable: bool) -> Compressed:
    """Compress `path` to `path` + suffix via a temporary name, then remove `path`; returns the new path
    and the SHA-256 of what it held (hashed as it is read, at no second read).

    With `durable`, the compressed data and its name are fsynced before the original goes, so a power
    cut leaves one complete copy or the other, never neither.
    """
    target = path.with_name(path.name + SUFFIXES[compression])
    temp = target.with_name(target.name + ".tmp")
    content = hashlib.sha256()
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with (
            os.fdopen(fd, "wb", closefd=False) as sink,
            path.open("rb") as file,
            _packer(compression, sink) as packed,
        ):
            for chunk in iter(lambda: file.read(CHUNK), b""):
                content.update(chunk)
                packed.write(chunk)
        if durable:
            os.fsync(fd)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    temp.replace(target)
    if durable:
        fsync_directory(target.parent)
    path.unlink()
    return Compressed(target, content.hexdigest())


def _packer(compression: Compression, sink: BinaryIO) -> zstandard.ZstdCompressionWriter | gzip.GzipFile:
    """A writer that compresses into `sink`, ending its stream (not `sink`) when closed."""
    if compression == "zstd":
        # The frame's checksum makes any changed byte an error at decompression, not garbled lines.
        return zstandard.ZstdCompressor(level=3, write_checksum=True).stream_writer(sink, closefd=False)
    return gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0)


class WrittenIds:
    """The event ids written under each seq, read back from the closed files and then the current one:
    to tell an entry offered again (the same event) from another event under a seq already written.

    Forward only, as the runner offers entries, so a catch-up that offers every written seq again costs
    one pass over the files; a range at or before the last one asked for starts the pass again."""

    def __init__(self, current: Path) -> None:
        self._current = current
        self._lines: Iterator[tuple[int, str]] | None = None
        self._ahead: tuple[int, str] | None = None  # read, above the last range asked for
        self._asked = 0

    def reset(self) -> None:
        """Read afresh at the next range (the files were renamed: a rotation)."""
        self._lines = self._ahead = None

    def between(self, first: int, last: int) -> dict[int, set[str]]:
        """The event ids written under each seq from `first` to `last` that the files still hold."""
        if self._lines is None or first <= self._asked:
            self._lines, self._ahead = self._read_from(first), None
        self._asked = last
        found: dict[int, set[str]] = {}
        ahead, self._ahead = [self._ahead] if self._ahead else [], None
        for seq, event_id in itertools.chain(ahead, self._lines):
            if seq > last:
                self._ahead = (seq, event_id)
                return found
            if seq >= first:
                found.setdefault(seq, set()).add(event_id)
        self.reset()  # at the end: what is appended from now on is read on the next pass
        return found

    def _read_from(self, first: int) -> Iterator[tuple[int, str]]:
        # A file that cannot be read back leaves its seqs unchecked, as they were before this check:
        # it is a second line of defence and must not stop the sink.
        try:
            closed = closed_files(self._current.parent, self._current.stem)
        except OSError as exc:
            log.warning("file sink: cannot list %s (%s); repeats are not checked", self._current.parent, exc)
            return
        for path in [c.path for c in closed if c.last_seq >= first] + [self._current]:
            try:
                for line in read_lines(path):
                    if (written := seq_and_id_of_line(line[:-1])) is not None:
                        yield written
            except FileNotFoundError:
                continue  # deleted past max_files meanwhile
            except (OSError, CorruptFileError) as exc:
                log.warning(
                    "file sink: cannot read %s back (%s); entries offered again under its seqs are "
                    "taken as written without checking their event ids",
                    path,
                    exc,
                )


def last_line_start(fd: int, end: int) -> int:
    """The offset just after the last newline before `end` in the file `fd` (0 if there is none)."""
    position = end
    while position > 0:
        start = max(0, position - _TAIL_BLOCK)
        newline = os.pread(fd, position - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def first_line(fd: int) -> bytes:
    """The first line of the file `fd`, without its newline."""
    parts: list[bytes] = []
    offset = 0
    while chunk := os.pread(fd, _TAIL_BLOCK, offset):
        newline = chunk.find(b"\n")
        if newline >= 0:
            parts.append(chunk[:newline])
            break
        parts.append(chunk)
        offset += len(chunk)
    return b"".join(parts)
