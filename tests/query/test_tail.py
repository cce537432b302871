"""`audit-query tail` prints the newest events, then, with -f, each new one once as its part lands."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

from auditship.ondisk.lake_layout import live_parts
from shipper.event import AuditEvent, AuditEventType
from tests.query.conftest import write_known
from tests.query.lakes import write_events
from tests.query.test_search import merge, seqs
from tests.waiting import wait_for


def test_tail_prints_the_newest_oldest_first(lake, cli):
    """-n 3: the three newest events, in the order they happened."""
    assert seqs(cli("tail", "--lake", lake, "-n", "3").out) == [11, 12, 13]
    assert seqs(cli("tail", "--lake", lake).out) == list(range(4, 14))


class Follower:
    """`audit-query tail -f` in a process; its output lines are collected as they come."""

    def __init__(self, *args: object) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "auditship.query", "tail", "-f", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def seqs(self) -> list[int]:
        return [json.loads(line)["wal_seq"] for line in list(self.lines)]

    def wait_for_seqs(self, count: int) -> list[int]:
        wait_for(lambda: len(self.lines) >= count, 15, f"{count} lines from tail -f")
        return self.seqs()

    def finish(self, timeout: float) -> tuple[int, str]:
        """Its exit status and stderr, once it has exited by itself within `timeout`."""
        status = self.process.wait(timeout)
        assert self.process.stderr is not None
        errors = self.process.stderr.read()
        self.close()
        return status, errors

    def close(self) -> None:
        """Kill it if it still runs; close the pipes."""
        self.process.kill()
        self.process.wait()
        self._reader.join(5)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
"""The known events' `now` for the follow test: the api events it adds minutes later share a date with
the newest known one (half an hour before), as they would not just after midnight."""


def event(service: str, minutes: int) -> AuditEvent:
    return AuditEvent(
        event_type=AuditEventType.HEARTBEAT, service_name=service, timestamp=NOON + timedelta(minutes=minutes)
    )


def test_follow_prints_each_new_event_once_and_ctrl_c_exits_0(tmp_path):
    """New parts are printed as they land (in time order within a look); a part that compaction merged
    from parts already printed adds nothing; Ctrl-C ends it with status 0."""
    lake = write_known(tmp_path / "data", now=NOON) / "lake"
    follower = Follower(
        "--lake", lake, "-n", "2", "--format", "json", "--interval", "0.1", "--stop-after", "60"
    )
    try:
        assert follower.wait_for_seqs(2) == [12, 13]
        write_events(lake, [(14, event("api", 1)), (15, event("billing", 2))])
        assert follower.wait_for_seqs(4) == [12, 13, 14, 15]
        api_today = {part.parent for part in live_parts(lake) if part.name.endswith("14.parquet")}
        for directory in api_today:
            merge(directory, remove_sources=True)  # compaction merges 14 with what was there
        write_events(lake, [(16, event("records", 3))])
        assert follower.wait_for_seqs(5) == [12, 13, 14, 15, 16]
        follower.process.send_signal(signal.SIGINT)
        assert follower.finish(15) == (0, "")
        assert follower.seqs() == [12, 13, 14, 15, 16]
    finally:
        follower.close()


def test_follow_stops_after_its_limit(lake):
    """--stop-after S bounds following: the command exits 0 by itself."""
    follower = Follower("--lake", lake, "-n", "1", "--interval", "0.1", "--stop-after", "0.5")
    assert follower.finish(30) == (0, "")
    assert follower.seqs() == [13]
