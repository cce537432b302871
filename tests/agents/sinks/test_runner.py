"""The sink runner's loop with real sinks, a real WAL and a real mailbox; the test is its supervisor.

The runner runs in a thread and its mailbox connects to a ROUTER socket the test holds, which sends Stop
as the supervisor does and reads the counters the runner reports.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest
import zmq

from auditship.agents import messages
from auditship.agents.config import AgentConfig, WalConfig, parse_config
from auditship.agents.crypto import Keyring
from auditship.agents.mailbox import Mailbox
from auditship.agents.messages import Stats, Stop
from auditship.agents.sinks.base import Sink
from auditship.agents.sinks.file.config import FileSinkConfig
from auditship.agents.sinks.file.sink import FileSink
from auditship.agents.sinks.parquet.compaction import CompactionPolicy
from auditship.agents.sinks.parquet.config import ParquetSinkConfig
from auditship.agents.sinks.parquet.sink import ParquetSink
from auditship.agents.sinks.runner import SinkRunner, age_s
from auditship.agents.sinks.siem.config import SiemSinkConfig
from auditship.agents.sinks.siem.sink import SiemSink, destination
from auditship.agents.wal import WalReader, WriteAheadLog
from auditship.agents.wal.growth import GrowthAnnouncer
from auditship.agents.wal.identity import record_id
from auditship.ondisk.lake_layout import live_parts
from shipper.control import Message
from shipper.event import AuditEvent
from shipper.wire import Frame, frame_encoder
from tests.agents.sinks.damage import overwrite_footer
from tests.agents.sinks.entries import WAL_ID, event
from tests.siem_server import API_KEY, TOKEN, ServedSiem
from tests.waiting import wait_for


class Supervised:
    """A SinkRunner in a thread, supervised by the test through a ROUTER socket."""

    def __init__(self, root: Path, sink: Sink, batch_size: int, flush_interval_s: float = 0.0) -> None:
        self.config: AgentConfig = parse_config(
            f'data_dir = "{root / "data"}"\nruntime_dir = "{root / "run"}"\n'
            "[supervisor]\nstats_interval_s = 0.05\n"
        )
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        endpoint = f"ipc://{root}/control.sock"
        self.router.bind(endpoint)
        self.worker = f"sink:{sink.name}".encode()
        mailbox = Mailbox(self.context, endpoint, self.worker.decode(), os.getppid())
        self.runner = SinkRunner(sink, self.config, mailbox, batch_size, flush_interval_s)
        self.thread = threading.Thread(target=self.runner.run, name="runner")
        self.stats: list[Stats] = []

    def start(self) -> Supervised:
        self.thread.start()
        return self

    def send(self, message: Message) -> None:
        self.router.send_multipart([self.worker, messages.encoder.encode(message)])

    def received(self) -> list[Stats]:
        """Every Stats the runner has sent so far."""
        while self.router.poll(0):
            _, payload = self.router.recv_multipart()
            message = messages.decoder.decode(payload)
            if isinstance(message, Stats):
                self.stats.append(message)
        return self.stats

    def stopped(self) -> bool:
        return not self.thread.is_alive()

    def close(self) -> None:
        if self.thread.is_alive():
            self.send(Stop())
            self.thread.join(30)
        self.runner.mailbox.close()
        self.router.close()
        self.context.term()


@pytest.fixture
def root() -> Iterator[Path]:
    """Short, for the ipc path."""
    path = Path(tempfile.mkdtemp(prefix="rn-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


Supervise = Callable[..., Supervised]


@pytest.fixture
def supervise(root: Path) -> Iterator[Supervise]:
    started: list[Supervised] = []

    def make(sink: Sink, batch_size: int, flush_interval_s: float = 0.0) -> Supervised:
        supervised = Supervised(root, sink, batch_size, flush_interval_s)
        started.append(supervised)
        return supervised.start()

    yield make
    for supervised in started:
        supervised.close()


def write_wal(root: Path, sink: str, payloads: list[bytes]) -> None:
    """Records straight into the WAL, as an intake would have appended them."""
    wal = WriteAheadLog(root / "data" / "wal", WalConfig(fsync="never"), [sink])
    wal.append(payloads)
    wal.close()


def frame(number: int, **fields: Any) -> bytes:
    return frame_of(number, event(number, **fields))


def frame_of(number: int, audit_event: AuditEvent) -> bytes:
    return frame_encoder.encode(Frame("runner-test", number, 0, audit_event))


def raw_frame(number: int, **overrides: Any) -> bytes:
    """A frame with event fields no AuditEvent built in Python could carry (a naive time as text, a
    msgpack extension value), as a frame from another emitter could."""
    fields = msgspec.to_builtins(event(number)) | overrides
    return msgspec.msgpack.encode(["runner-test", number, 0, fields])


def siem_sink(served: ServedSiem, destination_kind: str, **config: Any) -> SiemSink:
    key = TOKEN if destination_kind == "splunk_hec" else API_KEY
    settings = SiemSinkConfig(  # type: ignore[arg-type]
        enabled=True, destination_kind=destination_kind, endpoint=served.url, api_key=key, **config
    )
    return SiemSink(settings, destination(settings, WAL_ID), WAL_ID)


def committed(root: Path, sink: str) -> int:
    reader = WalReader(root / "data" / "wal", sink)
    reader.close()
    return reader.committed


def test_during_a_drain_each_retry_after_is_waited_out_although_stop_comes_every_tick(
    root: Path, siem: ServedSiem, supervise: Supervise
) -> None:
    """Three answers of 429 with Retry-After: 1, while Stop(drain) arrives every 100 ms as the supervisor
    resends it: the four requests are a second or more apart, and the drain ends once all is delivered."""
    siem.siem.answer_next(3, 429, retry_after="1", body={"text": "slow down", "code": 9})
    write_wal(root, "siem", [frame(n) for n in range(1, 11)])
    supervised = supervise(siem_sink(siem, "splunk_hec"), batch_size=1000)
    wait_for(lambda: siem.siem.requests, 10, "the first request")

    def drained() -> bool:
        supervised.send(Stop(drain=True))
        return supervised.stopped()

    wait_for(drained, 30, "the drain to end", interval=0.1)
    arrivals = [seen.at for seen in siem.siem.requests]
    assert len(arrivals) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert all(gap >= 0.95 for gap in gaps), gaps
    assert len(siem.siem.hec_events) == 10
    assert committed(root, "siem") == 10


def test_a_plain_stop_ends_a_drains_backoff_at_once_and_leaves_the_cursor_before_the_undelivered(
    root: Path, siem: ServedSiem, supervise: Supervise, caplog: pytest.LogCaptureFixture
) -> None:
    """The SIEM asks for 60 s; a drain is asked for, then the supervisor's deadline passes and it sends a
    plain Stop: the runner ends without another request, its cursor where it was, and says what stays."""
    siem.siem.answer_next(5, 503, retry_after="60", body={"text": "Server is busy", "code": 9})
    write_wal(root, "siem", [frame(n) for n in range(1, 11)])
    supervised = supervise(siem_sink(siem, "splunk_hec"), batch_size=1000)
    wait_for(lambda: supervised.runner.counters.retries == 1, 10, "the first retry's backoff")
    with caplog.at_level(logging.INFO, "auditship.sinks"):
        for _ in range(3):
            supervised.send(Stop(drain=True))
        supervised.send(Stop())
        wait_for(supervised.stopped, 10, "the runner to stop")
    assert len(siem.siem.requests) == 1
    assert committed(root, "siem") == 0
    assert "stopped at WAL seq 0 with events after it not delivered; they stay in the WAL" in caplog.text


def test_the_backoff_starts_afresh_after_each_retry_that_delivered_part_of_the_batch(
    root: Path, siem: ServedSiem, supervise: Supervise, caplog: pytest.LogCaptureFixture
) -> None:
    """Bulk items throttled 1, 2, 3 and 4 times: each of the four retries delivers one of them, so each
    waits as a first attempt would, not as the fourth of a growing backoff."""
    events = [event(n) for n in range(1, 41)]
    write_wal(root, "siem", [frame_of(n, e) for n, e in enumerate(events, 1)])
    siem.siem.throttle_ids = {record_id(WAL_ID, lsn): times for times, lsn in enumerate(range(1, 5), 1)}
    with caplog.at_level(logging.WARNING, "auditship.sinks"):
        supervised = supervise(siem_sink(siem, "elasticsearch", batch_size=10), batch_size=1000)
        wait_for(lambda: len(siem.siem.docs) == 40, 30, "every event in the index")
    retries = [line for line in caplog.text.splitlines() if "not delivered (attempt" in line]
    assert len(retries) == 4 == supervised.runner.counters.retries
    assert all("(attempt 1)" in line for line in retries), retries


def test_lag_is_the_age_of_the_oldest_undelivered_event_at_every_report_during_a_backoff(
    root: Path, siem: ServedSiem, supervise: Supervise
) -> None:
    """Events an hour old, a SIEM asking for 60 s: while the runner waits, each report says a lag of an
    hour or more, growing from one report to the next, though no retry happens between them."""
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    siem.siem.answer_next(1, 503, retry_after="60", body={"text": "Server is busy", "code": 9})
    write_wal(root, "siem", [frame(n, timestamp=an_hour_ago) for n in range(1, 6)])
    supervised = supervise(siem_sink(siem, "splunk_hec"), batch_size=1000)

    def lags_in_backoff() -> list[float]:
        """lag_s of each report sent while the first retry waits; [] until there are four."""
        lags = [float(s.counters["lag_s"]) for s in supervised.received() if s.counters["retries"] == 1]
        return lags if len(lags) >= 4 else []

    lags = wait_for(lags_in_backoff, 10, "four reports during the backoff")
    assert all(lag >= 3600 for lag in lags), lags
    assert lags == sorted(lags) and lags[-1] > lags[0], lags
    assert len(siem.siem.requests) == 1


def test_lag_is_the_age_of_the_oldest_event_of_the_batch_not_of_its_first(
    root: Path, siem: ServedSiem, supervise: Supervise
) -> None:
    """A batch whose first events are a minute old and whose third is an hour old (spooled late, or from
    an emitter whose clock is behind): while its delivery waits out a backoff, the lag is the hour-old
    event's, not the first one's."""
    now = datetime.now(UTC)
    ages = [timedelta(minutes=1), timedelta(minutes=1), timedelta(hours=1), timedelta(minutes=1)]
    siem.siem.answer_next(1, 503, retry_after="60", body={"text": "Server is busy", "code": 9})
    write_wal(root, "siem", [frame(n, timestamp=now - age) for n, age in enumerate(ages, 1)])
    supervised = supervise(siem_sink(siem, "splunk_hec"), batch_size=1000)

    def lag_in_backoff() -> float | None:
        reports = [s for s in supervised.received() if s.counters["retries"] == 1]
        return float(reports[-1].counters["lag_s"]) if reports else None

    lag = wait_for(lag_in_backoff, 10, "a report during the backoff")
    assert lag >= 3600, lag


def test_an_idle_wait_ends_when_the_intake_says_the_wal_grew_and_a_backoff_does_not(root: Path) -> None:
    """A sink with nothing to read sleeps until the intake's news on wal.sock (wal/growth.py) instead of
    polling; the same news during a backoff leaves the backoff whole."""
    (root / "run").mkdir()
    data = root / "data"
    sink = FileSink(FileSinkConfig(fsync=False), data, Keyring.load_or_create(data / "keys"))
    supervised = Supervised(root, sink, 10)
    announcer = GrowthAnnouncer(supervised.context, supervised.config.runtime_path)
    try:
        idle = threading.Thread(target=supervised.runner._wait, args=(60.0,), kwargs={"until_growth": True})
        idle.start()

        def woken() -> bool:
            announcer.grew()  # PUB/SUB: said until heard
            return not idle.is_alive()

        wait_for(woken, 10, "the idle wait to end on the news")
        started = time.monotonic()
        backoff = threading.Thread(target=supervised.runner._wait, args=(1.0,))
        backoff.start()
        while backoff.is_alive() and time.monotonic() - started < 10:
            announcer.grew()
            backoff.join(0.05)
        assert time.monotonic() - started >= 1.0
    finally:
        announcer.close()
        supervised.runner.growth.close()  # run() closes it; this runner never ran
        supervised.close()


def test_age_takes_a_naive_time_as_utc_and_never_overflows_or_goes_below_zero() -> None:
    """The lag of events with odd timestamps already in a WAL: naive, far past, far future."""
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert age_s(datetime(2026, 3, 10, 11, 0), now) == 3600.0
    assert age_s(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))), now) > 6e10
    assert age_s(datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))), now) == 0.0
    assert age_s(datetime.max, now) == 0.0


def test_records_that_do_not_decode_or_cannot_be_written_are_set_apart_and_the_rest_are_written(
    root: Path, supervise: Supervise
) -> None:
    """Among good events: a record that is no frame, an event with a naive timestamp, one whose details
    hold a msgpack extension value (the file's JSON cannot hold it) and one from year 1. The file gets every
    event it can hold, the extension value goes to dead letters with the exception as its reason, the
    record that does not decode is counted, and the runner goes on."""
    payloads = [
        frame(1),
        msgspec.msgpack.encode(["runner-test", 2, 0, "not an event"]),
        raw_frame(3, timestamp="2026-03-10T12:00:00"),
        raw_frame(4, details={"blob": msgspec.msgpack.Ext(5, b"\x00\x01")}),
        raw_frame(5, timestamp="0001-01-01T00:00:00+14:00"),
        frame(6),
    ]
    write_wal(root, "file", payloads)
    data = root / "data"
    sink = FileSink(FileSinkConfig(fsync=False), data, Keyring.load_or_create(data / "keys"))
    supervised = supervise(sink, batch_size=1000)
    wait_for(lambda: supervised.runner.counters.committed == 6, 10, "the batch committed")
    lines = [msgspec.json.decode(line) for line in (data / "files" / "audit.jsonl").read_bytes().splitlines()]
    assert [line["wal_seq"] for line in lines] == [1, 3, 5, 6]
    letters = [
        msgspec.json.decode(line) for line in (data / "deadletters" / "file.jsonl").read_bytes().splitlines()
    ]
    assert [letter["seq"] for letter in letters] == [4]
    assert letters[0]["reason"].startswith("the file sink cannot write it: TypeError")
    assert letters[0]["event"]["details"] == {"blob": {"msgpack_ext": 5, "data": "AAE="}}
    counters = supervised.runner.counters
    assert (counters.undecodable, counters.unwritable, counters.dead_lettered) == (1, 1, 1)
    assert counters.delivered == 4
    assert not supervised.stopped()


def test_a_sinks_own_counters_are_reported_beside_the_runners(root: Path, supervise: Supervise) -> None:
    """The parquet sink, compacting after every batch, with a part damaged between two batches: the part
    is quarantined and `quarantined_parts` reaches the supervisor in the runner's Stats."""
    data = root / "data"
    policy = CompactionPolicy(interval_s=0.0, min_age_s=0.0, grace_s=0.0)
    sink = ParquetSink(ParquetSinkConfig(), data, Keyring.load_or_create(data / "keys"), policy)
    write_wal(root, "parquet", [frame(number) for number in range(1, 6)])
    supervised = supervise(sink, batch_size=5)
    wait_for(lambda: supervised.runner.counters.committed == 5, 10, "the first batch committed")
    (part,) = live_parts(sink.lake)
    overwrite_footer(part)
    write_wal(root, "parquet", [frame(number) for number in range(6, 11)])
    wait_for(
        lambda: any(s.counters.get("quarantined_parts") == 1 for s in supervised.received()),
        10,
        "quarantined_parts=1 in a Stats",
    )
    assert not part.exists() and supervised.runner.counters.committed == 10


def test_a_batch_over_many_services_is_written_over_several_batches_each_row_once(
    root: Path, supervise: Supervise
) -> None:
    """Issue 13: 300 events from 120 services with `max_partitions = 10`: the parquet sink writes ten
    partitions a batch, the runner commits before the rest and offers it at once (not after another
    flush interval: twelve of those would be a minute), counting it in `deferred`. Every event is in the
    lake once."""
    data = root / "data"
    settings = ParquetSinkConfig(max_partitions=10, compaction=False)
    sink = ParquetSink(settings, data, Keyring.load_or_create(data / "keys"))
    write_wal(
        root, "parquet", [frame(number, service_name=f"svc-{number % 120}") for number in range(1, 301)]
    )
    supervised = supervise(sink, batch_size=1000, flush_interval_s=5.0)
    wait_for(lambda: supervised.runner.counters.committed == 300, 40, "every event committed")
    counters = supervised.runner.counters
    assert counters.delivered == 300
    assert counters.batches >= 12
    assert counters.deferred > 300  # the first batch left 290 events, the second 280...
    assert counters.retries == 0
    with duckdb.connect() as con:
        paths = [str(path) for path in live_parts(sink.lake)]
        seqs = con.execute("SELECT wal_seq FROM read_parquet(?) ORDER BY 1", [paths]).fetchall()
    assert [seq for (seq,) in seqs] == list(range(1, 301))
    wait_for(
        lambda: any(s.counters.get("deferred") for s in supervised.received()), 10, "deferred in a Stats"
    )
