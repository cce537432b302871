"""The file sink's directory as its readers see it: closed files' names, and reading any file back.

    files/audit.jsonl                          the current file, appended to
    files/audit-<first>-<last>.jsonl           a closed file (`.log` in text format), before compression
    files/audit-<first>-<last>.jsonl.zst       a closed, compressed file (`.gz` with gzip)
    files/audit-<first>-<last>.jsonl.zst.tmp   a compression in progress; removed on the sink's next open

<first> and <last> are the WAL sequence numbers of the file's first and last event. The sink writes
these files (agents/sinks/filestore.py compresses them) and `audit-query` reads them; both take the
names and the readers from here, so they agree.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple

from auditship.ondisk.lines import LineFormat, seq_of_line

Compression = Literal["zstd", "gzip", "none"]
SUFFIXES: dict[str, str] = {"zstd": ".zst", "gzip": ".gz", "none": ""}
CHUNK = 1 << 20
# Compressed input is fed to zstd this much at a time; at damage, the piece is fed again a byte at a time.
_ZSTD_PIECE = 64 * 1024


class ClosedFile(NamedTuple):
    path: Path
    first_seq: int
    last_seq: int
    compressed: bool


class CorruptFileError(Exception):
    """A compressed file that does not decompress; the message names the file."""


def closed_name(stem: str, first_seq: int, last_seq: int, line_format: LineFormat) -> str:
    return f"{stem}-{first_seq}-{last_seq}.{'jsonl' if line_format == 'json' else 'log'}"


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


def read_lines(path: Path, start: int = 0) -> Iterator[bytes]:
    """The lines of a sink file, each with its newline, decompressing by suffix; a last line without a
    newline (being written, or torn by a crash) is not yielded. `start`: from that byte of a file that is
    not compressed (the start of a line).

    Raises OSError when the file cannot be read and CorruptFileError when it does not decompress.
    """
    with path.open("rb") as file:
        file.seek(start)
        if path.suffix == ".zst":
            chunks = _zstd_chunks(file, path)
        elif path.suffix == ".gz":
            chunks = _gzip_chunks(file, path)
        else:
            chunks = iter(lambda: file.read(CHUNK), b"")
        pending = b""
        for chunk in chunks:
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                yield line + b"\n"


def line_seqs(path: Path, start: int = 0) -> list[int | None]:
    """The WAL seq of each complete line of a sink file from byte `start` (None for a line without one).
    Raises as `read_lines`."""
    return [seq_of_line(line[:-1]) for line in read_lines(path, start)]


def _zstd_chunks(file: BinaryIO, path: Path) -> Iterator[bytes]:
    import zstandard  # here, not at the top: ondisk stays light at import

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
    import zstandard

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
            yield from iter(lambda: unpacked.read(CHUNK), b"")
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise CorruptFileError(f"{path}: not valid gzip: {exc}") from exc
