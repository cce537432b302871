"""The Parquet sink writes one part per (date, service) partition, with the lake's schema, sensitive values
only as ciphertext, each event once however often a batch is offered, and ignores what a crash left."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest

from auditship.agents.crypto import Keyring, decrypt_sensitive
from auditship.agents.sinks.base import Delivery, Entry, Partial, Refused
from auditship.agents.sinks.parquet.config import ParquetSinkConfig
from auditship.agents.sinks.parquet.schema import COLUMNS
from auditship.agents.sinks.parquet.sink import ParquetSink
from auditship.ondisk.envelope import is_envelope
from auditship.ondisk.lake_layout import STAGING_PREFIX, live_parts, part_name, partition_dir
from auditship.query.filters import EventFilter
from auditship.query.search import search
from shipper.event import AuditEvent, AuditEventType, AuditOutcome, AuditSeverity, Sender
from tests.agents.sinks.entries import SECRET, entries

OpenParquet = Callable[..., ParquetSink]
DAY = datetime(2026, 3, 14, 23, 59, 59, 999_999, tzinfo=UTC)


@pytest.fixture
def open_parquet(data_dir: Path, keyring: Keyring) -> Iterator[OpenParquet]:
    """open_parquet(**config) -> an opened ParquetSink over `data_dir`; closed at the end of the test."""
    sinks: list[ParquetSink] = []

    def make(**config: Any) -> ParquetSink:
        sink = ParquetSink(ParquetSinkConfig(**config), data_dir, keyring)
        sink.open()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.close()


def query(sql: str, *params: object) -> list[tuple[Any, ...]]:
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql, list(params)).fetchall()


def lake_rows(sink: ParquetSink, columns: str = "wal_seq") -> list[tuple[Any, ...]]:
    """`columns` of every row a reader sees (the live parts), in WAL order."""
    paths = [str(path) for path in live_parts(sink.lake)]
    return query(f"SELECT {columns} FROM read_parquet(?, hive_partitioning = false) ORDER BY wal_seq", paths)


def seqs(sink: ParquetSink) -> list[int]:
    return [row[0] for row in lake_rows(sink)]


def test_the_schema_has_every_event_field_in_order_then_wal_seq() -> None:
    """A field added to AuditEvent without a column would silently be dropped from the lake."""
    assert list(COLUMNS) == [*AuditEvent.__struct_fields__, "wal_seq"]


def test_an_events_sender_is_a_json_column_null_when_unknown(
    open_parquet: OpenParquet, keyring: Keyring
) -> None:
    sink = open_parquet()
    batch = [*entries(range(1, 3), keyring, sender=Sender(uid=1001, pid=7)), *entries(range(3, 4), keyring)]
    assert sink.write_batch(batch) is Delivery.DELIVERED
    rows = lake_rows(sink, "wal_seq, sender->>'uid', sender IS NULL")
    assert rows == [(1, "1001", False), (2, "1001", False), (3, None, True)]


def test_a_batch_becomes_one_part_per_date_and_service(open_parquet: OpenParquet, keyring: Keyring) -> None:
    """Entries of two services over midnight (UTC) and one without a service: four partitions, each part
    named for the WAL range it holds."""
    sink = open_parquet()
    after = DAY + timedelta(microseconds=1)
    batch = [
        *entries(range(1, 4), keyring, service_name="billing", timestamp=DAY),
        *entries(range(4, 6), keyring, service_name="billing", timestamp=after),
        *entries(range(6, 8), keyring, service_name="api/v2 ü", timestamp=DAY),
        *entries(range(8, 9), keyring, timestamp=after),
    ]
    assert sink.write_batch(batch) is Delivery.DELIVERED

    expected = {
        partition_dir(sink.lake, "2026-03-14", "billing") / part_name(1, 3),
        partition_dir(sink.lake, "2026-03-15", "billing") / part_name(4, 5),
        partition_dir(sink.lake, "2026-03-14", "api/v2 ü") / part_name(6, 7),
        partition_dir(sink.lake, "2026-03-15", None) / part_name(8, 8),
    }
    assert set(live_parts(sink.lake)) == expected
    assert {path.parent.name for path in expected} == {
        "service=billing",
        "service=api%2Fv2%20%C3%BC",
        "service=_unknown",
    }
    hive = query(
        "SELECT date::VARCHAR, service, list(wal_seq ORDER BY wal_seq) "
        "FROM read_parquet(?, hive_partitioning = true) GROUP BY ALL ORDER BY 3",
        [str(path) for path in expected],
    )
    assert hive == [
        ("2026-03-14", "billing", [1, 2, 3]),
        ("2026-03-15", "billing", [4, 5]),
        ("2026-03-14", "api/v2 ü", [6, 7]),  # DuckDB undoes the %-quoting
        ("2026-03-15", "_unknown", [8]),
    ]


def test_no_service_an_empty_one_and_unknown_share_one_part(
    open_parquet: OpenParquet, keyring: Keyring
) -> None:
    """They share the `_unknown` directory, so they are one partition: one part holding all of them (two
    parts of one batch in one directory would have overlapping ranges, and readers would skip one)."""
    sink = open_parquet()
    batch = [
        *entries(range(1, 3), keyring),
        *entries(range(3, 5), keyring, service_name=""),
        *entries(range(5, 7), keyring, service_name="_unknown"),
    ]
    assert sink.write_batch(batch) is Delivery.DELIVERED
    assert [path.name for path in live_parts(sink.lake)] == [part_name(1, 6)]
    assert seqs(sink) == list(range(1, 7))


def test_a_part_has_the_lake_schema_and_keeps_every_value(
    open_parquet: OpenParquet, keyring: Keyring
) -> None:
    """Column names and types are schema.COLUMNS exactly (date and service only in the path); every value
    reads back as it was emitted, the timestamp as the same instant in UTC."""
    sink = open_parquet()
    paris = timezone(timedelta(hours=2))
    full = AuditEvent(
        event_type=AuditEventType.DATA_EXPORT,
        timestamp=datetime(2026, 3, 15, 1, 30, 0, 123_456, tzinfo=paris),
        severity=AuditSeverity.CRITICAL,
        outcome=AuditOutcome.FAILURE,
        message="export of 'all' rows",
        action="export",
        user_id="alice",
        session_id="s-1",
        source_ip="10.0.0.1",
        user_agent="curl/8",
        resource_type="table",
        resource_id="patients",
        service_name="reports",
        service_version="1.2.3",
        environment="prod",
        node_id="node-7",
        correlation_id="c-1",
        request_id="r-1",
        trace_id="t" * 32,
        span_id="s" * 16,
        method="POST",
        endpoint="/export",
        status_code=403,
        duration_ms=12.5,
        request_size=2**40,
        response_size=0,
        details={"rows": 10**20, "nested": {"list": [1, "two", None]}, "nul": "a\0b"},
        changes={"before": {"x": 1}, "after": {"x": 2}},
        compliance=["SOX", "GDPR"],
        schema_version=1,
    )
    plain = AuditEvent(event_type=AuditEventType.HEARTBEAT, timestamp=DAY)
    assert sink.write_batch([Entry(1, full), Entry(2, plain)]) is Delivery.DELIVERED

    paths = [str(path) for path in live_parts(sink.lake)]
    described = query("DESCRIBE SELECT * FROM read_parquet(?, hive_partitioning = false)", paths)
    assert {name: kind for name, kind, *_ in described} == {
        name: "TIMESTAMP WITH TIME ZONE" if kind == "TIMESTAMPTZ" else kind for name, kind in COLUMNS.items()
    }
    assert [name for name, *_ in described] == list(COLUMNS)
    row, default = lake_rows(sink, "*")
    written = dict(zip(COLUMNS, row, strict=True))
    assert written.pop("wal_seq") == 1
    assert written.pop("timestamp") == full.timestamp.astimezone(UTC)
    for name in ("details", "changes", "sensitive"):
        assert msgspec.json.decode(written.pop(name)) == getattr(full, name), name
    assert written == {name: msgspec.to_builtins(getattr(full, name)) for name in written}
    # A field left at its default is absent from the encoded event; the part still has the default.
    defaults = dict(zip(COLUMNS, default, strict=True))
    assert (defaults["severity"], defaults["outcome"], defaults["message"]) == ("info", "success", "")
    assert (defaults["details"], defaults["compliance"], defaults["schema_version"]) == ("{}", [], 1)
    assert defaults["user_id"] is None and defaults["status_code"] is None


def test_sensitive_values_are_in_the_lake_only_as_envelopes(
    open_parquet: OpenParquet, keyring: Keyring
) -> None:
    """What the intake encrypted stays ciphertext, and a plaintext value that reaches the sink through a
    bug upstream is encrypted on the way; both decrypt with the keyring."""
    sink = open_parquet()
    sink.write_batch(entries(range(1, 4), keyring, sensitive={"ssn": SECRET}))
    sink.write_batch(entries(range(4, 6), keyring=None, sensitive={"ssn": SECRET}))

    for path in sink.lake.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    found = search(sink.lake, EventFilter(), limit=None)
    assert len(found) == 5
    for _, event in found:  # read back whole: the envelope binds the event's hash
        assert is_envelope(event.sensitive["ssn"])
        assert decrypt_sensitive(event, keyring).sensitive == {"ssn": SECRET}


def test_a_batch_offered_again_adds_only_what_the_lake_lacks(
    open_parquet: OpenParquet, keyring: Keyring
) -> None:
    """The same batch again writes nothing; a batch that overlaps what is there (the runner read further
    after a restart) writes only its new entries, as one part from the first new seq."""
    sink = open_parquet()
    batch = entries(range(1, 101), keyring, service_name="api")
    assert sink.write_batch(batch) is Delivery.DELIVERED
    assert sink.write_batch(batch) is Delivery.DELIVERED
    overlapping = [*batch[50:], *entries(range(101, 151), keyring, service_name="api")]
    assert sink.write_batch(overlapping) is Delivery.DELIVERED

    assert [path.name for path in live_parts(sink.lake)] == [part_name(1, 100), part_name(101, 150)]
    assert seqs(sink) == list(range(1, 151))


def test_after_a_crash_between_two_parts_a_new_sink_writes_only_the_missing_one(
    open_parquet: OpenParquet, keyring: Keyring, data_dir: Path
) -> None:
    """A kill after the first part of a batch was renamed into place and before the second: the sink that
    starts next (knowing nothing but the files) writes the second part only."""
    batch = [
        *entries(range(1, 6), keyring, service_name="a"),
        *entries(range(6, 9), keyring, service_name="b"),
        *entries(range(9, 11), keyring, service_name="a"),
    ]
    first = open_parquet()
    first.write_batch(batch)
    (lost,) = first.lake.glob("date=*/service=b/part-*.parquet")
    lost.unlink()
    first.close()

    restarted = open_parquet()
    assert restarted.write_batch(batch) is Delivery.DELIVERED
    assert seqs(restarted) == list(range(1, 11))
    assert sorted(path.name for path in live_parts(restarted.lake)) == [part_name(1, 10), part_name(6, 8)]


def test_staging_files_a_crash_left_are_invisible_to_readers_and_removed_on_open(
    open_parquet: OpenParquet, keyring: Keyring
) -> None:
    """Half-written files under staging names (a batch's NDJSON and directory, a compaction's part) are
    not parts; the next open deletes them, and the batch is then written whole."""
    sink = open_parquet()
    batch = entries(range(1, 7), keyring, service_name="a")
    sink.write_batch(batch[:3])
    (directory,) = sink.lake.glob("date=*/service=a")
    leftovers = [
        sink.lake / f"{STAGING_PREFIX}batch-4-6.ndjson",
        sink.lake / f"{STAGING_PREFIX}batch-4-6" / "k=0" / "data_0.parquet",
        directory / f"{STAGING_PREFIX}{part_name(1, 6)}",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PAR1 torn")
    assert [path.name for path in live_parts(sink.lake)] == [part_name(1, 3)]
    sink.close()

    reopened = open_parquet()
    assert not [path for path in reopened.lake.rglob("*") if path.name.startswith(STAGING_PREFIX)]
    assert reopened.write_batch(batch) is Delivery.DELIVERED
    assert seqs(reopened) == list(range(1, 7))


def test_an_event_that_does_not_fit_the_schema_is_refused_with_the_reason(
    open_parquet: OpenParquet, keyring: Keyring
) -> None:
    """A status code wider than INTEGER and a request size wider than BIGINT: those events are refused
    (the runner dead-letters them), the rest of the batch is written."""
    sink = open_parquet()
    batch = entries(range(1, 6), keyring)
    batch[1] = Entry(2, msgspec.structs.replace(batch[1].event, request_size=2**63))
    batch[3] = Entry(4, msgspec.structs.replace(batch[3].event, status_code=2**40))

    outcome = sink.write_batch(batch)

    assert isinstance(outcome, Refused)
    assert outcome.entries == [batch[1], batch[3]]
    assert outcome.reasons == [
        f"parquet sink: event {batch[1].event.event_id}: "
        f"request_size = {2**63} does not fit the lake's BIGINT column ({-(2**63)} to {2**63 - 1})",
        f"parquet sink: event {batch[3].event.event_id}: "
        f"status_code = {2**40} does not fit the lake's INTEGER column ({-(2**31)} to {2**31 - 1})",
    ]
    assert seqs(sink) == [1, 3, 5]


def test_a_service_name_too_long_for_a_directory_is_refused_with_the_reason(
    open_parquet: OpenParquet, keyring: Keyring
) -> None:
    """A partition directory cannot be named for it: its events are refused, the others are written."""
    sink = open_parquet()
    batch = [*entries(range(1, 3), keyring, service_name="s" * 300), *entries(range(3, 6), keyring)]
    # With a misfit of the other kind in the batch too, both kinds are refused.
    batch[4] = Entry(5, msgspec.structs.replace(batch[4].event, status_code=-(2**31) - 1))

    outcome = sink.write_batch(batch)

    assert isinstance(outcome, Refused)
    assert outcome.entries == [batch[4], batch[0], batch[1]]
    assert outcome.reasons[1] == (
        f"parquet sink: event {batch[0].event.event_id}: service_name {'s' * 40!r}... is too long for a "
        "directory name"
    )
    assert seqs(sink) == [3, 4]


def test_a_batch_that_cannot_be_written_is_errored_then_written_once(
    open_parquet: OpenParquet, keyring: Keyring, caplog: pytest.LogCaptureFixture
) -> None:
    """A file where the partition's directory should be: ERRORED, with the batch and the consequence in
    the log; once the obstacle is gone the same batch is written, and nothing twice."""
    sink = open_parquet()
    sink.write_batch(entries(range(1, 3), keyring, service_name="a"))
    batch = [
        *entries(range(3, 5), keyring, service_name="a"),
        *entries(range(5, 7), keyring, service_name="b"),
    ]
    (date_dir,) = sink.lake.glob("date=*")
    blocker = date_dir / "service=b"
    blocker.write_bytes(b"not a directory")

    assert sink.write_batch(batch) is Delivery.ERRORED
    assert "writing batch 3-6" in caplog.text and "stays in the WAL and is retried" in caplog.text
    assert not [path for path in sink.lake.rglob("*") if path.name.startswith(STAGING_PREFIX)]

    blocker.unlink()
    assert sink.write_batch(batch) is Delivery.DELIVERED
    assert seqs(sink) == list(range(1, 7))


def in_services(keyring: Keyring, services: str, start: int = 1) -> list[Entry]:
    """One entry a letter of `services`, each letter a service, numbered from `start`."""
    return [
        entries(range(n, n + 1), keyring, service_name=f"svc-{name}")[0]
        for n, name in enumerate(services, start)
    ]


def test_a_batch_is_cut_where_it_would_write_into_one_partition_more_than_the_cap(
    open_parquet: OpenParquet, keyring: Keyring
) -> None:
    """Issue 13: partitions a batch writes into are capped. With `max_partitions = 3`, a batch over
    services a b a c b d a e c a is written up to d (the fourth): Partial(5); the rest, offered again
    as the runner does, is cut before c, then written whole. Every row is in the lake once, each
    partition's rows in WAL order, and the whole batch offered again writes nothing."""
    sink = open_parquet(max_partitions=3)
    batch = in_services(keyring, "abacbdaeca")

    first = sink.write_batch(batch)
    assert first == Partial(5, Refused([], []))
    assert seqs(sink) == [1, 2, 3, 4, 5]
    second = sink.write_batch(batch[5:])
    assert second == Partial(3, Refused([], []))
    assert sink.write_batch(batch[8:]) is Delivery.DELIVERED

    assert seqs(sink) == list(range(1, 11))
    assert sink.write_batch(batch) is Delivery.DELIVERED
    assert seqs(sink) == list(range(1, 11))
    paths = [str(path) for path in live_parts(sink.lake)]
    in_order = (
        "SELECT service_name, list(wal_seq ORDER BY wal_seq) FROM read_parquet(?) GROUP BY 1 ORDER BY 1"
    )
    assert query(in_order, paths) == [
        ("svc-a", [1, 3, 7, 10]),
        ("svc-b", [2, 5]),
        ("svc-c", [4, 9]),
        ("svc-d", [6]),
        ("svc-e", [8]),
    ]


def test_refusals_after_the_cut_are_left_to_the_batch_that_reaches_them(
    open_parquet: OpenParquet, keyring: Keyring
) -> None:
    """An event refused (a service name too long for a directory) before the cut is refused with the
    share written; one after it is not refused twice: the next batch finds it."""
    sink = open_parquet(max_partitions=1)
    too_long = entries(range(2, 3), keyring, service_name="s" * 300)[0]
    later = Entry(4, msgspec.structs.replace(too_long.event, event_id="later"))
    batch = [*in_services(keyring, "a"), too_long, *in_services(keyring, "b", 3), later]

    outcome = sink.write_batch(batch)
    assert isinstance(outcome, Partial)
    assert (outcome.taken, outcome.refused.entries) == (2, [too_long])
    outcome = sink.write_batch(batch[2:])
    assert isinstance(outcome, Refused)
    assert outcome.entries == [later]
    assert seqs(sink) == [1, 3]


def test_an_entry_under_a_seq_the_lake_holds_for_another_event_is_refused_with_the_reason(
    open_parquet: OpenParquet, keyring: Keyring, data_dir: Path
) -> None:
    """The WAL issued seqs 3-8 again (its reservation lost with its tail), to events of service `a`.
    Those whose seq the partition holds for another event, or for none (seqs 5-6 went to service `b`),
    are refused to dead letters with the reason, not skipped as written; the first events stay, the new
    seqs after them land, and the first batch offered again is still skipped silently, also by a sink
    that starts knowing only the files."""
    first = [
        *entries(range(1, 5), keyring, service_name="a"),
        *entries(range(5, 7), keyring, service_name="b"),
        *entries(range(7, 9), keyring, service_name="a"),
    ]
    assert open_parquet().write_batch(first) is Delivery.DELIVERED
    sink = open_parquet()
    assert sink.write_batch(first) is Delivery.DELIVERED
    again = entries(range(3, 11), keyring, service_name="a")

    outcome = sink.write_batch(again)

    assert isinstance(outcome, Refused)
    assert outcome.entries == again[:6]
    assert outcome.reasons[0] == (
        f"parquet sink: WAL seq 3 is in the lake for event {first[2].event.event_id}, "
        f"this is event {again[0].event.event_id}"
    )
    assert outcome.reasons[2] == (
        "parquet sink: WAL seq 5 is in the lake for no event of its partition (another's), "
        f"this is event {again[2].event.event_id}"
    )
    kept = [event_id for (event_id,) in lake_rows(sink, "event_id")]
    assert kept == [entry.event.event_id for entry in [*first, *again[6:]]]
