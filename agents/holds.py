"""Legal holds: events that retention keeps whatever their age, until the hold is removed.

A hold is named and matches events as a SIEM's preservation query does: by custodian (`user_id`), by
matter (`resource_type`, `resource_id`) and by period (`since`, `until`: [since, until) in UTC). The
criteria a hold gives must all match (AND); an event matched by any hold is held (OR). A hold gives at
least one criterion, so no hold keeps everything by mistake.

What retention keeps for a held event is what holds it: the lake partition (a whole date=... directory),
the closed file, the SQL rows, each reported as kept with the holds that matched. Rejects and dead
letters are not events of the trail and are not held.

The holds live in `holds.json` in the data directory, replaced atomically under a lock (two operators
adding at once both get theirs). A file that cannot be read or decoded is a HoldsError: retention then
removes nothing, since it cannot know what is held.
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from auditship.agents.durable import write_atomically
from auditship.ondisk.errors import AuditshipError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_HOLDS = 1000
"""Each hold is a condition of every retention query: a bound that keeps them cheap."""


class HoldsError(AuditshipError):
    """A hold that cannot be made or removed, or a holds file that cannot be read."""


class Hold(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    name: str
    created: datetime
    reason: str = ""
    user_id: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def criteria(self) -> str:
        """What it matches, in one line: `user_id=alice resource_id=456 2025-01-01T00:00:00+00:00..`."""
        shown = [
            f"{field}={value}"
            for field in ("user_id", "resource_type", "resource_id")
            if (value := getattr(self, field)) is not None
        ]
        if self.since is not None or self.until is not None:
            shown.append(f"{_iso(self.since)}..{_iso(self.until)}")
        return " ".join(shown)

    def matches(
        self, user_id: str | None, resource_type: str | None, resource_id: str | None, at: datetime
    ) -> bool:
        return (
            (self.user_id is None or user_id == self.user_id)
            and (self.resource_type is None or resource_type == self.resource_type)
            and (self.resource_id is None or resource_id == self.resource_id)
            and (self.since is None or at >= self.since)
            and (self.until is None or at < self.until)
        )

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether its period meets [start, end) (any event there could match)."""
        return (self.since is None or self.since < end) and (self.until is None or self.until > start)

    def sql(self) -> tuple[str, list[Any]]:
        """Its condition over the lake's columns (DuckDB), with the parameters."""
        terms: list[str] = []
        params: list[Any] = []
        for field in ("user_id", "resource_type", "resource_id"):
            if (value := getattr(self, field)) is not None:
                terms.append(f"{field} = ?")
                params.append(value)
        if self.since is not None:
            terms.append("timestamp >= ?")
            params.append(self.since)
        if self.until is not None:
            terms.append("timestamp < ?")
            params.append(self.until)
        return f"({' AND '.join(terms)})", params


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat(timespec="seconds")


def names(holds: Sequence[Hold]) -> str:
    return ", ".join(f"{hold.name} ({hold.criteria()})" for hold in holds)


class _Holds(msgspec.Struct, forbid_unknown_fields=True):
    holds: list[Hold] = msgspec.field(default_factory=list)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Holds)
MAX_FILE_BYTES = 4 * 1024 * 1024


def load(path: Path) -> list[Hold]:
    """The holds in `path` (none when it does not exist); HoldsError when it cannot be read."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise HoldsError(f"{path}: cannot read the legal holds: {exc.strerror}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise HoldsError(f"{path}: larger than {MAX_FILE_BYTES} bytes, not a holds file")
    try:
        return _decoder.decode(raw).holds
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise HoldsError(f"{path}: not a holds file: {exc}") from exc


@contextmanager
def _locked(path: Path) -> Iterator[list[Hold]]:
    """The holds, to change in place; written back atomically when the block ends without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(f".{path.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        holds = load(path)
        yield holds
        write_atomically(path, _encoder.encode(_Holds(holds)))


def add(
    path: Path,
    name: str,
    *,
    reason: str = "",
    user_id: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
) -> Hold:
    """Add the hold `name`; HoldsError for a bad name, one in use, no criterion or an empty period."""
    if not _NAME.fullmatch(name):
        raise HoldsError(f"hold name {name!r}: expected 1 to 64 letters, digits, '.', '_' or '-'")
    if since is not None and until is not None and since >= until:
        raise HoldsError(f"hold {name}: --since {_iso(since)} is not before --until {_iso(until)}")
    hold = Hold(
        name=name,
        created=now or datetime.now(UTC),
        reason=reason,
        user_id=user_id,
        resource_type=resource_type,
        resource_id=resource_id,
        since=since,
        until=until,
    )
    if not hold.criteria():
        raise HoldsError(
            f"hold {name}: give at least one of --user, --resource-type, --resource-id, --since, --until "
            "(a hold on everything is retention.auto_cleanup = false)"
        )
    with _locked(path) as holds:
        if any(held.name == name for held in holds):
            raise HoldsError(f"hold {name} exists already (remove it first to change it)")
        if len(holds) >= MAX_HOLDS:
            raise HoldsError(f"{path}: {MAX_HOLDS} holds already, the most retention takes")
        holds.append(hold)
    return hold


def remove(path: Path, name: str) -> Hold:
    """Remove the hold `name` and return it; HoldsError when there is none."""
    with _locked(path) as holds:
        for index, held in enumerate(holds):
            if held.name == name:
                return holds.pop(index)
        raise HoldsError(f"no hold {name} in {path}")
