"""rejects/ keeps every refused frame with a UTC time; the log gets a line per kind of reason, not a flood."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from agents.intake.rejects import WARN_INTERVAL_S, RejectLog, WarningLimit, reason_kind

OVERSIZED = "frame of 2000000 bytes exceeds intake.max_frame_bytes=1048576"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "auditship.intake" and r.levelname == "WARNING"
    ]


def test_a_reject_is_kept_with_its_utc_time_in_iso_8601_in_the_days_file(tmp_path: Path) -> None:
    """The record's time is an ISO 8601 string ending in Z, and its date is the one in the file's name."""
    before = datetime.now(UTC)
    RejectLog(tmp_path).write(b"\x00bad", "socket", "invalid frame: MessagePack data is malformed")
    after = datetime.now(UTC)
    (path,) = tmp_path.glob("rejects-*.jsonl")
    record = msgspec.json.decode(path.read_bytes())
    assert record["time"].endswith("Z")
    when = datetime.fromisoformat(record["time"])
    assert before <= when <= after and when.tzinfo is not None and when.utcoffset() == timedelta(0)
    assert path.name == f"rejects-{when:%Y%m%d}.jsonl"
    assert (record["source"], record["size"], base64.b64decode(record["frame_b64"])) == (
        "socket",
        4,
        b"\x00bad",
    )


def test_a_flood_of_one_kind_is_one_warning_and_the_next_says_how_many_were_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """10,000 oversized frames within the interval: all in the file, one WARNING naming the source and
    the reason. Another kind gets its own line. After the interval, the next line counts the 9,999."""
    clock = Clock()
    rejects = RejectLog(tmp_path, clock)
    with caplog.at_level(logging.WARNING, logger="auditship.intake"):
        for _ in range(10_000):
            rejects.write(b"x" * 10, "socket", OVERSIZED)
        rejects.write(b"y", "spool:e1.spool.1.claimed", "sealed spool record: bad key")
        first, other = warnings(caplog)
        assert first.startswith(
            f"rejected a 10-byte frame from socket: {OVERSIZED} (kept in {tmp_path}/rejects-"
        )
        assert other.startswith(
            "rejected a 1-byte frame from spool:e1.spool.1.claimed: sealed spool record: bad key (kept in"
        )
        clock.now += WARN_INTERVAL_S
        rejects.write(b"x" * 10, "socket", OVERSIZED)
    assert warnings(caplog)[-1].endswith("; 9999 more like it since the last such line were not logged)")
    assert rejects.count == 10_002
    assert sum(len(path.read_bytes().splitlines()) for path in tmp_path.glob("*.jsonl")) == 10_002


def test_the_limit_admits_one_line_per_kind_per_interval() -> None:
    """Fed timestamps: the first line of a kind is logged, the rest of its interval counted, and the first
    line after the interval reports the count; kinds do not hold each other back."""
    limit = WarningLimit(10.0)
    assert limit.admit("a", 0.0) == 0
    assert [limit.admit("a", t) for t in (1.0, 5.0, 9.9)] == [None, None, None]
    assert limit.admit("b", 9.9) == 0
    assert limit.admit("a", 10.0) == 3
    assert limit.admit("a", 19.0) is None
    assert limit.admit("a", 50.0) == 1
    assert limit.admit("a", 60.0) == 0


def test_a_reasons_kind_leaves_out_its_particulars() -> None:
    """What follows the first `: ` and every number are particulars of one frame, not of its kind."""
    assert reason_kind("invalid frame: Expected `int`, got `str` - at `$[1]`") == "invalid frame"
    assert reason_kind(OVERSIZED) == "frame of # bytes exceeds intake.max_frame_bytes=#"
    assert reason_kind(OVERSIZED.replace("2000000", "3000")) == reason_kind(OVERSIZED)


def test_a_reject_that_cannot_be_kept_is_counted_and_does_not_stop_the_intake(tmp_path: Path) -> None:
    """rejects/ unwritable (here: missing; on a full disk, ENOSPC): write() returns, counted as unwritten."""
    rejects = RejectLog(tmp_path / "missing")
    rejects.write(b"\x00garbage", "socket", "invalid frame: nope")
    assert (rejects.count, rejects.unwritten) == (1, 1)
