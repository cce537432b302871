"""rejects/ keeps every refused frame with a UTC time; the log gets a line per kind of reason, not a flood."""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from auditship.agents.crypto.keyring import Keyring
from auditship.agents.crypto.spool_unseal import unseal
from auditship.agents.intake.rejects import WARN_INTERVAL_S, RejectLog, WarningLimit, reason_kind

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


KEY = bytes(range(32))  # any X25519 public key: these tests do not open what is sealed to it


def test_a_reject_is_kept_with_its_utc_time_in_iso_8601_in_the_days_file(tmp_path: Path) -> None:
    """The record's time is an ISO 8601 string ending in Z, and its date is the one in the file's name."""
    before = datetime.now(UTC)
    keyring = Keyring.load_or_create(tmp_path / "keys")
    RejectLog(tmp_path, keyring.spool_public_key()).write(
        b"\x00bad", "socket", "invalid frame: MessagePack data is malformed"
    )
    after = datetime.now(UTC)
    (path,) = tmp_path.glob("rejects-*.jsonl")
    record = msgspec.json.decode(path.read_bytes())
    assert record["time"].endswith("Z")
    when = datetime.fromisoformat(record["time"])
    assert before <= when <= after and when.tzinfo is not None and when.utcoffset() == timedelta(0)
    assert path.name == f"rejects-{when:%Y%m%d}.jsonl"
    frame = unseal(base64.b64decode(record["frame_sealed_b64"]), keyring)
    assert (record["source"], record["size"], frame) == ("socket", 4, b"\x00bad")
    assert record["sha256"] == hashlib.sha256(b"\x00bad").hexdigest()


def test_a_flood_of_one_kind_is_one_warning_and_the_next_says_how_many_were_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """10,000 oversized frames within the interval: all in the file, one WARNING naming the source and
    the reason. Another kind gets its own line. After the interval, the next line counts the 9,999."""
    clock = Clock()
    rejects = RejectLog(tmp_path, KEY, clock)
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


def test_rejects_left_out_of_the_log_are_counted_in_a_line_once_their_interval_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Three rejects, then none: the two left out are said when the intake's maintenance asks after
    the interval, not only if a fourth ever comes."""
    clock = Clock()
    rejects = RejectLog(tmp_path, KEY, clock)
    with caplog.at_level(logging.WARNING, logger="auditship.intake"):
        for _ in range(3):
            rejects.write(b"x" * 10, "socket", OVERSIZED)
        rejects.say_overdue()
        assert len(warnings(caplog)) == 1
        clock.now += WARN_INTERVAL_S
        rejects.say_overdue()
    assert warnings(caplog)[-1] == (
        "rejected 2 more frames (frame of # bytes exceeds intake.max_frame_bytes=#) since the last "
        f"such line (kept in {tmp_path})"
    )


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


def test_lines_left_out_are_overdue_once_their_interval_passes_without_another_of_their_kind() -> None:
    """One refused client, then silence: its count is said at the interval's end, not never."""
    limit = WarningLimit(10.0)
    assert limit.admit("a", 0.0) == 0
    assert limit.admit("a", 2.0) is None
    assert limit.admit("b", 3.0) == 0
    assert limit.overdue(9.9) == []
    assert limit.overdue(10.0) == [("a", 1)]
    assert limit.overdue(30.0) == []  # said once; "b" left nothing out
    assert limit.admit("a", 15.0) is None  # the overdue line started a new interval
    assert limit.overdue(20.0) == [("a", 1)]


def test_a_reasons_kind_leaves_out_its_particulars() -> None:
    """What follows the first `: ` and every number are particulars of one frame, not of its kind."""
    assert reason_kind("invalid frame: Expected `int`, got `str` - at `$[1]`") == "invalid frame"
    assert reason_kind(OVERSIZED) == "frame of # bytes exceeds intake.max_frame_bytes=#"
    assert reason_kind(OVERSIZED.replace("2000000", "3000")) == reason_kind(OVERSIZED)


def test_a_reject_that_cannot_be_kept_is_counted_and_does_not_stop_the_intake(tmp_path: Path) -> None:
    """rejects/ unwritable (here: missing; on a full disk, ENOSPC): write() returns, counted as unwritten."""
    rejects = RejectLog(tmp_path / "missing", KEY)
    rejects.write(b"\x00garbage", "socket", "invalid frame: nope")
    assert (rejects.count, rejects.unwritten) == (1, 1)


def test_a_rejected_frame_never_reaches_the_file_in_clear(tmp_path: Path) -> None:
    """A frame with a card number (refused for a wrong field type, say) is kept sealed: the number is
    nowhere in rejects/."""
    frame = b"\x94\xa1e\x01\x00\x81\xa9sensitive\xb34111-1111-1111-1111"
    RejectLog(tmp_path, KEY).write(frame, "socket", "invalid frame: Expected `object`")
    (path,) = tmp_path.glob("rejects-*.jsonl")
    assert b"4111-1111-1111-1111" not in path.read_bytes()
    assert b"4111" not in base64.b64decode(msgspec.json.decode(path.read_bytes())["frame_sealed_b64"])


def test_past_the_days_cap_rejects_are_counted_not_kept(tmp_path: Path) -> None:
    """A flood cannot fill the disk: past max_bytes one note says the cap was reached, the rest count."""
    rejects = RejectLog(tmp_path, KEY, max_bytes=20_000)
    for _ in range(100):
        rejects.write(b"x" * 1000, "socket", "invalid frame: nope")
    (path,) = tmp_path.glob("rejects-*.jsonl")
    lines = path.read_bytes().splitlines()
    assert path.stat().st_size <= 20_000
    assert b"cap_reached" in lines[-1]
    assert rejects.count == 100
    assert rejects.over_cap == 100 - (len(lines) - 1)
