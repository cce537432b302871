"""The file sink's directory: closed files' names, their compression, and reading them back.

    files/audit.jsonl                          the current file, appended to
    files/audit-<first>-<last>.jsonl           a closed file (`.log` in text format), before compression
    files/audit-<first>-<last>.jsonl.zst       a closed, compressed file (`.gz` with gzip)
    files/audit-<first>-<last>.jsonl.zst.tmp   a compression in progress; removed on the sink's next open

<first> and <last> are the WAL sequence numbers of the file's first and last event. The sink writes
these files and `audit-query` reads them; both take the names and the readers from here, so they agree.
"""

from __future__ import annotations

import gzip
import itertools
import logging
import os
import re
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple

import zstandard

from auditship.agents.durable import fsync_directory
from auditship.agents.sinks.formats import seq_and_id_of_line

log = logging.getLogger("auditship.sinks.file")
Compression = Literal["zstd", "gzip", "none"]
SUFFIXES: dict[str, str] = {"zstd": ".zst", "gzip": ".gz", "none": ""}
_CHUNK = 1 << 20
# Compressed input is fed to zstd this much at a time; at damage, the piece is fed again a byte at a time.
_ZSTD_PIECE = 64 * 1024
_TAIL_BLOCK = 64 * 1024


class ClosedFile(NamedTuple):
    path: Path
    first_seq: int
    last_seq: int
    compressed: bool


class CorruptFileError(Exception):
    """A compressed file that does not decompress; the message names the file."""


def closed_name(stem: str, first_seq: int, last_seq: int, fmt: str) -> str:
    return f"{stem}-{first_seq}-{last_seq}.{'jsonl' if fmt == 'json' else 'log'}"


def scan_closed(directory: Path, stem: str) -> list[ClosedFile]:
    """Every closed file in `directory`, oldest first; a range may appear both plain and compressed
    (a compression that a crash interrupted, or one in progress)."""
    pattern = re.compile(rf"{re.escape(stem)}-(\d+)-(\d+)\.(?:jsonl|log)(\.zst|\.gz)?")
    found = []
    for path in directory.iterdir():
        match = pattern.fullmatch(path.name)
        if match:
            found.append(ClosedFile(path, int(match[1]), int(match[2]), match[3] is not None))
    return sorted(found, key=lambda closed: (closed.first_seq, closed.last_seq, closed.compressed))


def closed_files(directory: Path, stem: str) -> list[ClosedFile]:
    """Each closed range once, oldest first, the compressed copy when there are two (it is complete:
    it got its name only after it was written)."""
    by_range = {(closed.first_seq, closed.last_seq): closed for closed in scan_closed(directory, stem)}
    return list(by_range.values())


def compress(path: Path, compression: Compression, *, durable: bool) -> Path:
    """Compress `path` to `path` + suffix via a temporary name, then remove `path`; returns the new path.

    With `durable`, the compressed data and its name are fsynced before the original goes, so a power
    cut leaves one complete copy or the other, never neither.
    """
    target = path.with_name(path.name + SUFFIXES[compression])
    temp = target.with_name(target.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb", closefd=False) as sink, path.open("rb") as source:
            if compression == "zstd":
                zstandard.ZstdCompressor(level=3).copy_stream(source, sink)
            else:
                with gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0) as packed:
                    shutil.copyfileobj(source, packed, _CHUNK)
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
    return target


def read_lines(path: Path) -> Iterator[bytes]:
    """The lines of a sink file, each with its newline, decompressing by suffix; a last line without a
    newline (being written, or torn by a crash) is not yielded.

    Raises OSError when the file cannot be read and CorruptFileError when it does not decompress.
    """
    with path.open("rb") as file:
        if path.suffix == ".zst":
            chunks = _zstd_chunks(file, path)
        elif path.suffix == ".gz":
            chunks = _gzip_chunks(file, path)
        else:
            chunks = iter(lambda: file.read(_CHUNK), b"")
        pending = b""
        for chunk in chunks:
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                yield line + b"\n"


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


def _zstd_chunks(file: BinaryIO, path: Path) -> Iterator[bytes]:
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    offset = 0
    for piece in iter(lambda: file.read(_ZSTD_PIECE), b""):
        try:
            chunk = decompressor.decompress(piece)
        except zstandard.ZstdError:
            break  # damage in this piece: see below
        yield chunk
        offset += len(piece)
    else:
        # A stream cut short decompresses to less, silently; only the frame's end tells it was complete.
        if not decompressor.eof:
            raise CorruptFileError(f"{path}: truncated zstd data (the frame has no end after {offset} bytes)")
        return
    yield from _zstd_up_to_damage(file, path, offset)


def _zstd_up_to_damage(file: BinaryIO, path: Path, start: int) -> Iterator[bytes]:
    """What the piece at `start`, which failed, holds before its damage; then CorruptFileError naming the
    byte. A failed call returns nothing, not even the blocks it completed before the damage, so a new
    decompressor is brought to `start` (that output was yielded already) and fed the piece byte by byte."""
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    file.seek(0)
    offset = 0
    try:
        while offset < start and (piece := file.read(min(_ZSTD_PIECE, start - offset))):
            decompressor.decompress(piece)
            offset += len(piece)
        for byte in file.read(_ZSTD_PIECE):
            if chunk := decompressor.decompress(bytes((byte,))):
                yield chunk
            offset += 1
    except zstandard.ZstdError as exc:
        raise CorruptFileError(f"{path}: not valid zstd, found at byte {offset}: {exc}") from exc
    raise CorruptFileError(f"{path}: not valid zstd after byte {start} (it changed while it was read)")


def _gzip_chunks(file: BinaryIO, path: Path) -> Iterator[bytes]:
    try:
        with gzip.GzipFile(fileobj=file, mode="rb") as unpacked:
            yield from iter(lambda: unpacked.read(_CHUNK), b"")
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise CorruptFileError(f"{path}: not valid gzip: {exc}") from exc
