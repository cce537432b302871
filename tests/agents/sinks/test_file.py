"""The file sink writes each event once, as one line, encrypted, private, and durable before DELIVERED."""

import logging
import os
import stat

import msgspec
import pytest

from auditship.agents.crypto import decrypt_sensitive
from auditship.agents.errors import SinkError
from auditship.agents.sinks.base import Delivery, Refused
from auditship.ondisk.envelope import is_envelope
from auditship.ondisk.file_sink import read_lines
from auditship.ondisk.lines import decode_json_line
from shipper.event import AuditEvent
from tests.agents.sinks.entries import SECRET, entries


def lines(path):
    return path.read_bytes().splitlines()


def seqs(path):
    return [decode_json_line(line, AuditEvent)[0] for line in lines(path)]


def test_a_batch_becomes_json_lines_with_wal_seq(open_sink, keyring):
    """Each entry is one JSON line: the event's fields plus `wal_seq`, in WAL order."""
    sink = open_sink()
    batch = entries(range(1, 4), keyring)
    assert sink.write_batch(batch) is Delivery.DELIVERED

    decoded = [decode_json_line(line, AuditEvent) for line in lines(sink.path)]
    assert decoded == [(entry.lsn, entry.event) for entry in batch]


def test_sensitive_values_never_reach_any_file_in_plaintext(open_sink, keyring, data_dir):
    """Through writes, rotation and compression, no file under the data dir holds the secret; the
    envelopes in the file decrypt to it with the keyring."""
    sink = open_sink(max_file_size=2_000, compression="none")
    for start in range(1, 60, 6):
        sink.write_batch(entries(range(start, start + 6), keyring, sensitive={"ssn": SECRET}))
    sink.close()

    files = [path for path in data_dir.rglob("*") if path.is_file()]
    assert len(files) > 3
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    for path in data_dir.joinpath("files").iterdir():
        for line in read_lines(path):
            _, event = decode_json_line(line, AuditEvent)
            assert is_envelope(event.sensitive["ssn"])
            assert decrypt_sensitive(event, keyring).sensitive == {"ssn": SECRET}


def test_plaintext_from_upstream_is_still_encrypted(open_sink, keyring):
    """An entry that reaches the sink with a plaintext value (a bug upstream) is encrypted on the way."""
    sink = open_sink()
    sink.write_batch(entries(range(1, 2), keyring=None, sensitive={"ssn": SECRET}))
    assert SECRET.encode() not in sink.path.read_bytes()


def test_encrypt_sensitive_false_is_a_deliberate_plaintext_opt_out(open_sink, keyring):
    """With encrypt_sensitive = false the sink decrypts and writes the values, types intact."""
    sink = open_sink(encrypt_sensitive=False)
    sink.write_batch(entries(range(1, 2), keyring, sensitive={"ssn": SECRET, "pin": 1234}))
    (line,) = lines(sink.path)
    assert msgspec.json.decode(line)["sensitive"] == {"ssn": SECRET, "pin": 1234}


def test_an_envelope_without_its_key_is_written_still_encrypted(open_sink, keyring, caplog):
    """Opted out of encryption but the key is gone: the envelope is written as it is, with a warning."""
    batch = entries(range(1, 2), keyring, sensitive={"ssn": SECRET})
    (keyring.keys_dir / f"{keyring.active_key_id}.key").unlink()
    keyring._ciphers.clear()  # forget the cached key, as a fresh process would not have it
    sink = open_sink(encrypt_sensitive=False)

    assert sink.write_batch(batch) is Delivery.DELIVERED
    assert SECRET.encode() not in sink.path.read_bytes()
    assert "still encrypted" in caplog.text


def test_files_are_0600_and_directories_0700_whatever_the_umask(data_dir, keyring):
    """Under umask 0 the sink still creates its directory 0700 and its files 0600, compressed ones too."""
    from auditship.agents.sinks.file.config import FileSinkConfig
    from auditship.agents.sinks.file.sink import FileSink

    old = os.umask(0)
    try:
        sink = FileSink(FileSinkConfig(path="deep/er/audit.jsonl", max_file_size=500), data_dir, keyring)
        sink.open()
        for start in range(1, 20, 4):
            sink.write_batch(entries(range(start, start + 4), keyring))
        sink.close()
    finally:
        os.umask(old)

    for directory in (data_dir / "deep", data_dir / "deep/er"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    files = list((data_dir / "deep/er").iterdir())
    assert any(path.name.endswith(".zst") for path in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_an_existing_wider_file_is_made_private_on_open(open_sink, data_dir):
    """A current file left 0644 (by hand, or an older version) is 0600 once the sink opens it."""
    path = data_dir / "files" / "audit.jsonl"
    path.parent.mkdir(parents=True)
    path.touch(mode=0o644)
    path.chmod(0o644)
    open_sink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_batch_offered_again_after_a_crash_is_not_written_twice(data_dir, keyring, open_sink):
    """Write a batch, tear the last line as a crash mid-write would, reopen, offer the batch again and
    the next: the torn line is cut, every event appears exactly once, in order."""
    first = open_sink()
    batch, following = entries(range(1, 6), keyring), entries(range(6, 11), keyring)
    first.write_batch(batch)
    first.write_batch(following[:2])
    first.close()
    with first.path.open("ab") as file:  # seq 6 and 7 were whole; now half of an 8th
        file.write(lines(first.path)[-1][:40])

    reopened = open_sink()
    assert reopened.write_batch(batch) is Delivery.DELIVERED
    assert reopened.write_batch(following) is Delivery.DELIVERED

    assert seqs(reopened.path) == list(range(1, 11))


def test_a_torn_only_line_leaves_an_empty_file(data_dir, open_sink):
    """A file holding nothing but a torn first line is cut to empty, and the batch is written whole."""
    path = data_dir / "files" / "audit.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"event_type":"data_re')
    sink = open_sink()
    sink.write_batch(entries(range(1, 3)))
    assert seqs(path) == [1, 2]


def test_repeats_are_skipped_in_the_text_format_too(open_sink, keyring):
    """Text lines end with seq=N, which the sink reads back on open to skip what it wrote."""
    made = entries(range(1, 6), keyring)
    sink = open_sink(line_format="text")
    sink.write_batch(made[:3])
    sink.close()

    again = open_sink(line_format="text")
    assert again.write_batch(made) is Delivery.DELIVERED
    assert [line.rsplit(b"seq=", 1)[1] for line in lines(again.path)] == [b"1", b"2", b"3", b"4", b"5"]


def test_another_event_under_a_written_seq_is_refused_to_dead_letters_not_skipped(open_sink, keyring, caplog):
    """An entry whose seq the file holds for another event (the seq was issued twice) is neither skipped
    nor written: it is Refused (the runner dead-letters and counts it) with both event ids in its reason,
    and logged. In the same batch a repeat of a written event is skipped and new seqs are written: the
    file keeps one event per seq."""
    sink = open_sink()
    written = entries(range(1, 6), keyring)
    sink.write_batch(written)
    (impostor,) = entries(range(4, 5), keyring)
    outcome = sink.write_batch([written[2], impostor, *entries(range(6, 8), keyring)])

    assert isinstance(outcome, Refused)
    assert outcome.entries == [impostor]
    assert written[3].event.event_id in outcome.reasons[0]
    assert impostor.event.event_id in outcome.reasons[0]
    assert "issued twice" in outcome.reasons[0]
    assert [
        r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and "issued" in r.getMessage()
    ]
    decoded = [decode_json_line(line, AuditEvent) for line in lines(sink.path)]
    assert [seq for seq, _ in decoded] == list(range(1, 8))
    assert decoded[3][1].event_id == written[3].event.event_id


def test_a_last_line_the_sink_did_not_write_stops_it_with_the_file_named(data_dir, open_sink):
    """A last line without a WAL sequence number means the sink cannot know what it wrote: it refuses."""
    path = data_dir / "files" / "audit.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"someone typed this\n")
    with pytest.raises(SinkError, match=rf"{path}: its last line has no WAL sequence number"):
        open_sink()
