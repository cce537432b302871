"""Times on the command line: an ISO 8601 time (UTC unless it says otherwise), or an age: 15m, 24h, 7d."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from auditship.query.errors import QueryError

_AGE = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
AGE_HELP = "an age: a number and s, m, h, d or w (15m, 24h, 7d)"


def parse_age(text: str, option: str) -> timedelta:
    match = _AGE.fullmatch(text.strip())
    if match is None:
        raise QueryError(f"{option}: {text!r} is not {AGE_HELP}")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def parse_time(text: str, option: str, now: datetime | None = None) -> datetime:
    """`text` as an aware UTC datetime: an age counts back from `now` (default: the current time)."""
    if _AGE.fullmatch(text.strip()):
        return (now or datetime.now(UTC)) - parse_age(text, option)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise QueryError(
            f"{option}: {text!r} is neither an ISO 8601 time (2024-05-01, 2024-05-01T12:00:00Z) "
            f"nor {AGE_HELP}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def time_range(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """--since and --until, read against one `now`; an empty range is an error, not an empty answer."""
    now = datetime.now(UTC)
    start = parse_time(since, "--since", now) if since is not None else None
    end = parse_time(until, "--until", now) if until is not None else None
    if start is not None and end is not None and start >= end:
        raise QueryError(f"--since {since} is not before --until {until}")
    return start, end
