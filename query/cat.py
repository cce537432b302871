"""`audit-query cat`: print every event of the file sink's files, one per line.

Without FILE arguments it reads the data directory's files/: the closed files oldest first (compressed
or not), then the current one. A last line without its newline is one the sink is still writing (or a
torn tail it will cut) and is not printed. While the sink runs, this is a best-effort snapshot: a file
rotated during the read may be missed.

JSON Lines records can be printed as they are, as text, and with `--decrypt` with their `sensitive`
values decrypted with the field keys in --keys-dir (default: DIR-keys beside the data directory, or the
data directory's keys/ where an older agent left them). Lines the sink wrote in its text format can only
be printed as they are.

A damaged file does not stop the others: a compressed file that stops decompressing is printed up to the
damage, a line that is no event record is left out (zstd without a checksum can decompress damage into
such lines), each with a warning naming the file and where, and the command goes on to the next file
and exits with status 1 at the end.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from auditship.agents.config import AgentConfig, default_keys_dir
from auditship.agents.crypto.keys_dir import field_keys_dir
from auditship.ondisk import file_sink
from auditship.ondisk.envelope import open_sensitive
from auditship.ondisk.errors import DecryptionError, KeyringError
from auditship.ondisk.keys import FieldKeys
from auditship.ondisk.lines import LineFormat, decode_json_line, line_encoder
from auditship.query.errors import QueryError
from shipper.event import AuditEvent

logger = logging.getLogger("auditship.query")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "cat",
        parents=[common],
        help="print every event of the file sink's files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--decrypt", action="store_true", help="decrypt sensitive values with the field keys")
    parser.add_argument(
        "--keys-dir", type=Path, metavar="KEYS", help="the agent's keys_dir (default: DIR-keys beside DIR)"
    )
    parser.add_argument(
        "--format",
        dest="line_format",
        choices=("json", "text"),
        default="json",
        help="output (default: json)",
    )
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE", help="read these instead of DIR/files")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    paths: list[Path] = args.files or sink_files(args.data_dir)
    keyring = (
        open_field_keys(args.keys_dir or default_keys_dir(args.data_dir), args.data_dir)
        if args.decrypt
        else None
    )
    out = sys.stdout.buffer
    for path in paths:
        _print_file(path, args.line_format, keyring, out)
    out.flush()
    return 0


def sink_files(data_dir: Path) -> list[Path]:
    """The file sink's files in the order they were written: closed ones oldest first, then the current."""
    if not data_dir.is_dir():
        raise QueryError(f"{data_dir}: no such data directory (see --data-dir and AUDITSHIP_DATA_DIR)")
    current = data_dir / AgentConfig().sinks.file.path
    try:
        closed = file_sink.closed_files(current.parent, current.stem)
    except OSError as exc:
        raise QueryError(f"{current.parent}: cannot list the file sink's files: {exc.strerror}") from exc
    return [c.path for c in closed] + ([current] if current.exists() else [])


def open_field_keys(keys_dir: Path, data_dir: Path) -> FieldKeys:
    """The field keys that decrypt what the agent of `data_dir` sealed (also `subject export --decrypt`)."""
    try:
        return FieldKeys.load(field_keys_dir(keys_dir, data_dir))
    except KeyringError as exc:
        raise QueryError(f"cannot decrypt: {exc}") from exc


def _print_file(path: Path, line_format: LineFormat, keyring: FieldKeys | None, out: BinaryIO) -> None:
    """Every record of `path`; damage is a warning (module docstring), a file that cannot be opened an
    error."""
    skipped = 0
    first_skipped = ""  # where the first line that is no record is, and why
    json_lines = ".jsonl" in path.suffixes  # the sink names its text-format files .log
    for number, line in _numbered_lines(path):
        try:
            out.write(_render(line, line_format, keyring, f"{path}:{number}", json_lines))
        except msgspec.DecodeError as exc:
            first_skipped = first_skipped or f"{path}:{number}: not an audit event record ({exc})"
            skipped += 1
    if skipped:
        also = f"; {skipped - 1} more such lines in it" if skipped > 1 else ""
        logger.warning("%s, skipped%s", first_skipped, also)


def _numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The lines of `path`, numbered; a compressed file that stops decompressing ends with a warning."""
    number = 0
    try:
        for number, line in enumerate(file_sink.read_lines(_existing(path)), start=1):
            yield number, line
    except file_sink.CorruptFileError as exc:
        logger.warning("%s; the rest of it, after line %d, is skipped", exc, number)
    except OSError as exc:
        raise QueryError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _existing(path: Path) -> Path:
    """`path`, or its compressed copy when the sink compressed it between listing and reading."""
    if path.exists():
        return path
    for suffix in file_sink.SUFFIXES.values():
        if suffix and (packed := path.with_name(path.name + suffix)).exists():
            return packed
    return path  # opening it raises the error that names it


def _render(
    line: bytes, line_format: LineFormat, keyring: FieldKeys | None, where: str, json_lines: bool
) -> bytes:
    """The line as `line_format`; msgspec.DecodeError if it is no event record where one should be."""
    if not line.startswith(b"{"):
        if json_lines:  # damage in a file of JSON Lines, not a line in the sink's text format
            raise msgspec.DecodeError("not a JSON object")
        if line_format == "text" and keyring is None:
            return line
        raise QueryError(
            f"{where}: a line in the sink's text format; only --format text without --decrypt shows it"
        )
    seq, event = decode_json_line(line, AuditEvent)  # a DecodeError is the caller's to report
    if keyring is not None:
        try:
            opened = open_sensitive(event.event_id, event.sensitive, keyring)
        except DecryptionError as exc:
            raise QueryError(f"{where}: {exc}") from exc
        if opened is not None:
            event = msgspec.structs.replace(event, sensitive=opened)
    elif line_format == "json":
        return line  # as written, byte for byte
    return line_encoder(line_format)(seq, event)
