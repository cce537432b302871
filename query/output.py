"""How audit-query prints rows: an aligned table (the default on a terminal), JSON Lines (the default
otherwise, for pipes and scripts), or CSV with a header.

JSON keeps each value's type (numbers, lists, and the `details`/`changes`/`sensitive` JSON as JSON, not
as strings); CSV and the table write lists and maps as JSON text and times in ISO 8601.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, Literal, TextIO

import msgspec

OutputFormat = Literal["table", "json", "csv"]
TABLE_CELL_MAX = 60

_json = msgspec.json.Encoder(enc_hook=str)


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=("table", "json", "csv"),
        help="table (the default on a terminal), json (JSON Lines, the default otherwise) or csv",
    )


def chosen(output_format: str | None, out: TextIO | None = None) -> OutputFormat:
    if output_format is not None:
        return output_format  # type: ignore[return-value]  # argparse's choices
    return "table" if (out or sys.stdout).isatty() else "json"


def text(value: Any) -> str:
    """A value as one line of text: JSON for lists and maps, ISO 8601 for times, "" for NULL."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | dict):
        return _json.encode(value).decode()
    return str(value)


def write_json(value: Any, out: TextIO) -> None:
    """One value as one line of JSON."""
    out.write(_json.encode(value).decode() + "\n")


def write_rows(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    output_format: OutputFormat,
    out: TextIO,
    json_columns: frozenset[str] = frozenset(),
    *,
    header: bool = True,
) -> None:
    """`rows` under `columns`; values of `json_columns` are JSON text, embedded as JSON in json output.
    `header` False leaves out the CSV header, for the pieces of a CSV printed in several calls."""
    if output_format == "json":
        for row in rows:
            record = {
                name: msgspec.Raw(value.encode()) if name in json_columns and value is not None else value
                for name, value in zip(columns, row, strict=True)
            }
            write_json(record, out)
    elif output_format == "csv":
        writer = csv.writer(out, lineterminator="\n")
        if header:
            writer.writerow(columns)
        writer.writerows([text(value) for value in row] for row in rows)
    else:
        write_table(columns, ([text(value) for value in row] for row in rows), out)


def write_table(
    columns: Sequence[str], rows: Iterable[Sequence[str]], out: TextIO, widths: list[int] | None = None
) -> list[int]:
    """Columns padded to their widest cell; a cell is cut at TABLE_CELL_MAX characters, and a control
    character in one (a newline in a message) is escaped, so each row stays one line.

    With `widths` (what an earlier call returned), no header is printed and columns are at least that
    wide, so that a table printed in pieces (`tail -f`) stays aligned; returns the widths used.
    """
    cells = [[_cell(value) for value in row] for row in rows]
    header = [] if widths is not None else [list(columns)]
    widths = [
        max([len(name), *(len(row[i]) for row in cells), *(widths[i : i + 1] if widths else [])])
        for i, name in enumerate(columns)
    ]
    for row in [*header, *cells]:
        out.write("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
    return widths


def _cell(value: str) -> str:
    if not value.isprintable():
        value = value.encode("unicode_escape").decode()
    return value if len(value) <= TABLE_CELL_MAX else value[: TABLE_CELL_MAX - 1] + "…"


def write_markdown(columns: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO) -> None:
    """A Markdown (GitHub) table: cells as `text` gives them, `|` escaped and each cell on one line."""
    out.write("| " + " | ".join(columns) + " |\n")
    out.write("|" + "---|" * len(columns) + "\n")
    for row in rows:
        cells = (text(value).replace("|", "\\|").replace("\n", " ") for value in row)
        out.write("| " + " | ".join(cells) + " |\n")
