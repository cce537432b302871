"""`audit-query subject export USER`: every event by or about a data subject, oldest first, as JSON Lines
(each line the file sink's record of the event, as `cat` prints it), for a subject access request.

An event is the subject's when its user_id is USER (an event *by* them), or when one of the agent
config's `[subjects] fields` names USER (an event *about* them): `resource:TYPE` matches resource_type
TYPE with resource_id USER, `details.NAME` a value USER (or the integer USER) in details; `--field`
replaces the config's list for one export. The default list is resource:user, user_id.

--decrypt opens the sensitive values with the field keys in --keys-dir (default: the config's keys_dir,
else DIR-keys beside the data directory), as `cat --decrypt` does; a value whose subject key `audit-agent
subject forget` destroyed shows as "[erased subject]". Without it, values stay envelopes. -o FILE writes
the export there (0600, whole or not at all) instead of stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from auditship.agents.subjects.fields import SubjectField, parse_field
from auditship.ondisk.envelope import open_sensitive
from auditship.ondisk.errors import DecryptionError
from auditship.ondisk.keys import FieldKeys
from auditship.ondisk.lines import encode_json
from auditship.ondisk.subject_keys import check_subject
from auditship.query import location
from auditship.query.cat import open_field_keys
from auditship.query.errors import QueryError
from auditship.query.filters import EventFilter
from auditship.query.lake import LakeReader
from auditship.query.rows import Found, iter_events
from auditship.query.timespec import time_range


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("subject", help="data subjects (GDPR): export one's events")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        parents=[common],
        help="every event by or about a subject, oldest first, as JSON Lines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("subject", metavar="USER", help="the data subject: a user id, a patient id...")
    export.add_argument("--since", metavar="TIME", help="from this time on: ISO 8601 or an age (7d)")
    export.add_argument("--until", metavar="TIME", help="before this time: ISO 8601 or an age")
    export.add_argument("--decrypt", action="store_true", help="decrypt sensitive values with the keys")
    export.add_argument("--keys-dir", type=Path, metavar="KEYS", help="the agent's keys_dir")
    export.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="FIELD",
        help="what names the subject: resource:TYPE or details.NAME (repeatable; default: the config's "
        "[subjects] fields); user_id always does",
    )
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout")
    export.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.output_format not in (None, "json"):
        raise QueryError(f"--format {args.output_format}: subject export writes JSON Lines only")
    subject = checked(args.subject)
    where = location.resolve(args)
    start, end = time_range(args.since, args.until)
    wanted = EventFilter(start=start, end=end)
    fields = subject_fields(args.field or location.agent_config(args).subjects.fields)
    keys = None
    if args.decrypt:
        keys_dir = args.keys_dir or where.keys
        if keys_dir is None:
            raise QueryError("--decrypt with --lake: name the agent's keys_dir with --keys-dir")
        keys = open_field_keys(keys_dir, where.data.root if where.data is not None else where.lake.parent)
    with LakeReader(where.lake, wanted.prune().keeps) as reader:
        found = iter_events(reader.execute(*export_sql(fields, subject, wanted)))
        if args.output is None:
            written = write_lines(opened(found, keys), sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            written = write_file(args.output, opened(found, keys))
            print(f"exported {written} events to {args.output}", file=sys.stderr)
    return 0


def checked(subject: str) -> str:
    try:
        return check_subject(subject)
    except ValueError as exc:
        raise QueryError(f"USER: {exc}") from None


def subject_fields(texts: Iterable[str]) -> list[SubjectField]:
    try:
        return [parse_field(text) for text in texts]
    except ValueError as exc:
        raise QueryError(f"--field: {exc}") from None


def export_sql(fields: Iterable[SubjectField], subject: str, wanted: EventFilter) -> tuple[str, list[Any]]:
    """The subject's events in `wanted`'s time range, oldest first; every value a parameter."""
    clauses = ["user_id = ?"]
    params: list[Any] = [subject]
    for field in fields:
        if field.kind == "resource":
            clauses.append("(resource_type = ? AND resource_id = ?)")
            params += [field.resource_type, subject]
        elif field.kind == "details":
            # The path's names are checked identifiers (parse_field), and it is a parameter anyway.
            clauses.append("json_extract_string(details, ?) = ?")
            params += ["$." + ".".join(field.path), subject]
    condition, time_params = wanted.where()
    about = " OR ".join(clauses)
    sql = f"SELECT * FROM events WHERE {condition} AND ({about}) ORDER BY timestamp, wal_seq"  # noqa: S608
    return sql, [*time_params, *params]


def opened(found: Iterable[Found], keys: FieldKeys | None) -> Iterator[Found]:
    """`found` with the sensitive values decrypted when `keys` are given."""
    for seq, event in found:
        if keys is None or not event.sensitive:
            yield seq, event
            continue
        try:
            values = open_sensitive(event.event_id, event.sensitive, keys)
        except DecryptionError as exc:
            raise QueryError(f"cannot decrypt: {exc}") from exc
        yield seq, event if values is None else msgspec.structs.replace(event, sensitive=values)


def write_lines(found: Iterable[Found], out: IO[bytes]) -> int:
    written = 0
    for seq, event in found:
        out.write(encode_json(seq, event))
        written += 1
    return written


def write_file(path: Path, found: Iterable[Found]) -> int:
    """Write the export to `path`, 0600, under a temporary name renamed into place at the end: a failed
    export leaves no file that looks complete."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise QueryError(f"{path}: cannot write the export: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            written = write_lines(found, out)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise QueryError(f"{path}: cannot write the export: {exc.strerror or exc}") from exc
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return written
