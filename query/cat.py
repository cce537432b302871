"""`audit-query cat`: print every event of the file sink's files, one per line.

Without FILE arguments it reads the data directory's files/: the closed files oldest first (compressed
or not), then the current one. A last line without its newline is one the sink is still writing (or a
torn tail it will cut) and is not printed. While the sink runs, this is a best-effort snapshot: a file
rotated during the read may be missed.

JSON Lines records can be printed as they are, as text, and with `--decrypt` with their `sensitive`
values decrypted by DIR/keys. Lines the sink wrote in its text format can only be printed as they are.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from agents.config import FileSinkConfig
from agents.crypto import DecryptionError, Keyring, KeyringError, decrypt_sensitive
from agents.layout import DataLayout
from agents.sinks import filestore
from agents.sinks.formats import Format, decode_json_line, line_encoder
from query.errors import QueryError


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "cat",
        parents=[common],
        help="print every event of the file sink's files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--decrypt", action="store_true", help="decrypt sensitive values with DIR/keys")
    parser.add_argument("--format", choices=("json", "text"), default="json", help="output (default: json)")
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE", help="read these instead of DIR/files")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    paths: list[Path] = args.files or sink_files(args.data_dir)
    keyring = _keyring(args.data_dir) if args.decrypt else None
    out = sys.stdout.buffer
    for path in paths:
        for number, line in _numbered_lines(path):
            out.write(_render(line, args.format, keyring, f"{path}:{number}"))
    out.flush()
    return 0


def sink_files(data_dir: Path) -> list[Path]:
    """The file sink's files in the order they were written: closed ones oldest first, then the current."""
    if not data_dir.is_dir():
        raise QueryError(f"{data_dir}: no such data directory (see --data-dir and AUDITSHIP_DATA_DIR)")
    current = data_dir / FileSinkConfig().path
    try:
        closed = filestore.closed_files(current.parent, current.stem)
    except OSError as exc:
        raise QueryError(f"{current.parent}: cannot list the file sink's files: {exc.strerror}") from exc
    return [c.path for c in closed] + ([current] if current.exists() else [])


def _keyring(data_dir: Path) -> Keyring:
    try:
        return Keyring.load(DataLayout(data_dir).keys)
    except KeyringError as exc:
        raise QueryError(f"cannot decrypt: {exc}") from exc


def _numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        yield from enumerate(filestore.read_lines(_existing(path)), start=1)
    except filestore.CorruptFileError as exc:
        raise QueryError(str(exc)) from exc
    except OSError as exc:
        raise QueryError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _existing(path: Path) -> Path:
    """`path`, or its compressed copy when the sink compressed it between listing and reading."""
    if path.exists():
        return path
    for suffix in filestore.SUFFIXES.values():
        if suffix and (packed := path.with_name(path.name + suffix)).exists():
            return packed
    return path  # opening it raises the error that names it


def _render(line: bytes, fmt: Format, keyring: Keyring | None, where: str) -> bytes:
    if not line.startswith(b"{"):
        if fmt == "text" and keyring is None:
            return line
        raise QueryError(
            f"{where}: a line in the sink's text format; only --format text without --decrypt shows it"
        )
    try:
        seq, event = decode_json_line(line)
    except msgspec.DecodeError as exc:
        raise QueryError(f"{where}: not an audit event record: {exc}") from exc
    if keyring is not None:
        try:
            event = decrypt_sensitive(event, keyring)
        except DecryptionError as exc:
            raise QueryError(f"{where}: {exc}") from exc
    elif fmt == "json":
        return line  # as written, byte for byte
    return line_encoder(fmt)(seq, event)
