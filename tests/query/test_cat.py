"""`audit-query cat` prints every event of the file sink's files in order, and fails in one line."""

import os
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import zstandard

from auditship.agents.crypto import Keyring
from auditship.agents.sinks.file.config import FileSinkConfig
from auditship.agents.sinks.file.sink import FileSink
from auditship.ondisk.lines import encode_text
from auditship.query.cli import main
from tests.agents.sinks.entries import SECRET, entries

ROOT = Path(__file__).resolve().parents[2]


def write(data_dir, keyring, seqs, **config):
    sink = FileSink(FileSinkConfig(**config), data_dir, keyring)
    sink.open()
    for start in range(seqs.start, seqs.stop, 5):
        sink.write_batch(entries(range(start, min(start + 5, seqs.stop)), keyring, sensitive={"ssn": SECRET}))
    sink.close()


@pytest.fixture
def data_dir(tmp_path):
    """Closed .gz, .zst and plain files, then a current file: events 1-40 in all."""
    data = tmp_path / "data"
    keyring = Keyring.load_or_create(data / "keys")
    write(data, keyring, range(1, 11), max_file_size=1_000, compression="gzip")
    write(data, keyring, range(11, 21), max_file_size=1_000, compression="zstd")
    write(data, keyring, range(21, 31), max_file_size=1_000, compression="none")
    write(data, keyring, range(31, 41), max_file_size=10**9, compression="none")
    suffixes = {path.suffix for path in (data / "files").iterdir()}
    assert suffixes == {".gz", ".zst", ".jsonl"}
    return data


def cat(capsysbinary, *args):
    status = main(["cat", *map(str, args)])
    out, err = capsysbinary.readouterr()
    return status, out, err.decode()


def test_cat_prints_every_event_once_in_order_across_compressions(data_dir, capsysbinary):
    """Closed files oldest first (gzip, zstd, plain alike), then the current one: 1 to 40, once each."""
    status, out, _ = cat(capsysbinary, "--data-dir", data_dir)
    assert status == 0
    assert [msgspec.json.decode(line)["wal_seq"] for line in out.splitlines()] == list(range(1, 41))
    assert SECRET.encode() not in out


def test_cat_decrypts_with_the_keys_of_the_data_dir(data_dir, capsysbinary):
    """--decrypt shows the sensitive values in plaintext, from DIR/keys."""
    _, out, _ = cat(capsysbinary, "--data-dir", data_dir, "--decrypt")
    assert [msgspec.json.decode(line)["sensitive"] for line in out.splitlines()] == [{"ssn": SECRET}] * 40


def test_cat_prints_text(data_dir, capsysbinary):
    """--format text gives the file sink's text line for each event."""
    _, out, _ = cat(capsysbinary, "--data-dir", data_dir, "--format", "text")
    lines = out.splitlines()
    assert len(lines) == 40
    assert lines[0].startswith(b"20") and lines[0].endswith(b" seq=1")
    assert b" sensitive.ssn=aesgcm2:" in lines[0]


def test_cat_reads_the_files_it_is_given(data_dir, capsysbinary):
    """With FILE arguments only those are read, in the order given."""
    files = data_dir / "files"
    zst = next(files.glob("*.zst"))
    status, out, _ = cat(capsysbinary, files / "audit.jsonl", zst)
    assert status == 0
    seqs = [msgspec.json.decode(line)["wal_seq"] for line in out.splitlines()]
    assert seqs[:10] == list(range(31, 41)) and len(seqs) > 10


def test_cat_skips_a_line_still_being_written(data_dir, capsysbinary):
    """A last line without its newline (the sink is writing it) is not printed."""
    with (data_dir / "files" / "audit.jsonl").open("ab") as file:
        file.write(b'{"event_type":"data_re')
    status, out, _ = cat(capsysbinary, "--data-dir", data_dir)
    assert status == 0 and len(out.splitlines()) == 40


def test_text_format_files_pass_through_as_text(tmp_path, capsysbinary):
    """Lines the sink wrote in its text format print as they are with --format text, and are refused
    (naming file and line) where they would need converting."""
    path = tmp_path / "audit.log"
    path.write_bytes(b"".join(encode_text(e.lsn, e.event) for e in entries(range(1, 3))))
    assert cat(capsysbinary, "--format", "text", path)[1] == path.read_bytes()
    status, _, err = cat(capsysbinary, path)
    assert status == 2
    assert f"{path}:1: a line in the sink's text format" in err


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda files: (files / "audit-1-1.jsonl.zst").write_bytes(b"garbage, not zstd"), "not valid zstd"),
        (
            lambda files: (files / "audit-1-1.jsonl.zst").write_bytes(
                zstandard.ZstdCompressor().compress(b'{"event_type":"heartbeat","wal_seq":1}\n' * 500)[:-8]
            ),
            "truncated zstd",
        ),
        (lambda files: (files / "audit-1-1.jsonl.gz").write_bytes(b"garbage, not gzip"), "not valid gzip"),
        (
            lambda files: (files / "audit-1-1.jsonl").write_bytes(b"{broken json\n"),
            "not an audit event record",
        ),
    ],
)
def test_a_corrupt_file_is_a_warning_naming_it_and_the_files_after_it_are_printed(
    tmp_path, capsysbinary, make, expected
):
    """A corrupt or truncated compressed file, or a line that is no event: one warning naming the file,
    every event of the next file printed, and exit status 1 at the end."""
    files = tmp_path / "files"
    files.mkdir()
    make(files)
    write(tmp_path, Keyring.load_or_create(tmp_path / "keys"), range(2, 5))
    status, out, err = cat(capsysbinary, "--data-dir", tmp_path)
    assert status == 1
    assert [msgspec.json.decode(line)["wal_seq"] for line in out.splitlines()][-3:] == [2, 3, 4]
    assert err.count("\n") == 1 and err.startswith("audit-query: warning: ")
    assert str(files / "audit-1-1.jsonl") in err and expected in err


def big_closed_file(data_dir):
    """Events 1-1000: 815 of them in one closed .zst file of three zstd blocks, the rest in the current
    file; returns the closed file."""
    write(data_dir, Keyring.load_or_create(data_dir / "keys"), range(1, 1001), max_file_size=300_000)
    (closed,) = (data_dir / "files").glob("audit-1-*.jsonl.zst")
    return closed


def overwrite_second_block_header(path):
    """Make the second zstd block's header a reserved block type: damage zstd always detects."""
    data = bytearray(path.read_bytes())
    header = zstandard.frame_header_size(bytes(data))
    first_block = int.from_bytes(data[header : header + 3], "little") >> 3
    second = header + 3 + first_block
    data[second : second + 3] = b"\xff\xff\xff"
    path.write_bytes(bytes(data))
    return second


def test_a_closed_file_damaged_inside_is_printed_up_to_the_damage_then_the_next_files(tmp_path, capsysbinary):
    """A real closed file with a broken block: its events before the damage are printed, in order, the
    warning names the file, the byte and the last line printed, the current file follows, status 1."""
    closed = big_closed_file(tmp_path / "data")
    last_closed = int(closed.name.split("-")[2].split(".")[0])
    damaged_at = overwrite_second_block_header(closed)

    status, out, err = cat(capsysbinary, "--data-dir", tmp_path / "data")
    seqs = [msgspec.json.decode(line)["wal_seq"] for line in out.splitlines()]
    before = seqs[: seqs.index(last_closed + 1)]
    assert status == 1
    assert 0 < len(before) < last_closed and before == list(range(1, len(before) + 1))
    assert seqs[len(before) :] == list(range(last_closed + 1, 1001))
    found_at = re.fullmatch(
        rf"audit-query: warning: {re.escape(str(closed))}: not valid zstd, found at byte (\d+): "
        rf"zstd decompressor error: Data corruption detected; the rest of it, after line {len(before)}, "
        r"is skipped\n",
        err,
    )
    assert found_at is not None, err
    assert damaged_at <= int(found_at[1]) < damaged_at + 3  # within the header that was overwritten


def test_a_truncated_closed_file_is_printed_up_to_the_cut_then_the_next_files(tmp_path, capsysbinary):
    """A real closed file cut in half: what decompresses before the cut is printed, then the current file;
    the warning says the file has no end, status 1."""
    closed = big_closed_file(tmp_path / "data")
    last_closed = int(closed.name.split("-")[2].split(".")[0])
    size = closed.stat().st_size
    os.truncate(closed, size // 2)

    status, out, err = cat(capsysbinary, "--data-dir", tmp_path / "data")
    seqs = [msgspec.json.decode(line)["wal_seq"] for line in out.splitlines()]
    before = seqs[: seqs.index(last_closed + 1)]
    assert status == 1
    assert 0 < len(before) < last_closed and before == list(range(1, len(before) + 1))
    assert seqs[len(before) :] == list(range(last_closed + 1, 1001))
    assert f"{closed}: truncated zstd data (the frame has no end after {size // 2} bytes)" in err
    assert err.count("\n") == 1


def test_garbled_lines_in_a_closed_file_are_skipped_with_one_warning_for_them_all(tmp_path, capsysbinary):
    """zstd without a checksum can decompress damage into lines that are no records: each is left out,
    one warning names the file, the first such line and how many more, and the other events print."""
    data = tmp_path / "data"
    write(data, Keyring.load_or_create(data / "keys"), range(1, 11), max_file_size=1_000, compression="none")
    closed = sorted((data / "files").glob("audit-*.jsonl"), key=lambda path: path.stat().st_mtime_ns)[0]
    lines = closed.read_bytes().splitlines(keepends=True)
    kept = [msgspec.json.decode(line)["wal_seq"] for line in lines[:1] + lines[3:]]
    closed.write_bytes(lines[0] + b"\x00garbage\n" + b'{"not": "a record"\n' + b"".join(lines[3:]))

    status, out, err = cat(capsysbinary, "--data-dir", data)
    seqs = [msgspec.json.decode(line)["wal_seq"] for line in out.splitlines()]
    assert status == 1
    assert set(kept) <= set(seqs) and len(seqs) == 8
    assert err.startswith(f"audit-query: warning: {closed}:2: not an audit event record (not a JSON object)")
    assert err.endswith("skipped; 1 more such lines in it\n") and err.count("\n") == 1


def test_missing_inputs_are_one_line_errors(tmp_path, capsysbinary):
    """A missing data directory, a missing file and a missing keyring each exit 2 with the path named."""
    status, _, err = cat(capsysbinary, "--data-dir", tmp_path / "nope")
    assert (status, err) == (
        2,
        f"audit-query: {tmp_path / 'nope'}: no such data directory (see --data-dir and AUDITSHIP_DATA_DIR)\n",
    )

    status, _, err = cat(capsysbinary, tmp_path / "missing.jsonl")
    assert status == 2 and f"{tmp_path / 'missing.jsonl'}: cannot read: No such file or directory" in err

    (tmp_path / "files").mkdir()
    status, _, err = cat(capsysbinary, "--data-dir", tmp_path, "--decrypt")
    assert status == 2 and f"{tmp_path}-keys: no keyring here" in err


def test_a_tampered_envelope_is_named_with_file_line_and_event(data_dir, capsysbinary):
    """--decrypt over a record whose envelope was altered stops with file:line, event id and field."""
    current = data_dir / "files" / "audit.jsonl"
    lines = current.read_bytes().splitlines(keepends=True)
    record = msgspec.json.decode(lines[2])
    record["sensitive"]["ssn"] = record["sensitive"]["ssn"][:-4] + "AAAA"
    lines[2] = msgspec.json.encode(record) + b"\n"
    current.write_bytes(b"".join(lines))

    status, _, err = cat(capsysbinary, "--data-dir", data_dir, "--decrypt")
    assert status == 2
    assert f"{current}:3: event {record['event_id']}: sensitive field 'ssn'" in err
    assert "authentication failed" in err


def _edit_line(data_dir, index, edit):
    current = data_dir / "files" / "audit.jsonl"
    lines = current.read_bytes().splitlines(keepends=True)
    record = msgspec.json.decode(lines[index])
    edit(record)
    lines[index] = msgspec.json.encode(record) + b"\n"
    current.write_bytes(b"".join(lines))
    return current, record


def test_an_edited_field_beside_an_envelope_is_named_with_file_line_and_event(data_dir, capsysbinary):
    """--decrypt over a record whose user_id was changed (its envelope untouched) stops at that record:
    the envelope binds the event's hash."""
    current, record = _edit_line(data_dir, 4, lambda record: record.update(user_id="mallory"))

    status, out, err = cat(capsysbinary, "--data-dir", data_dir, "--decrypt")
    assert status == 2
    assert f"{current}:5: event {record['event_id']}: sensitive field 'ssn'" in err
    assert "the event around it was altered" in err
    assert b"mallory" not in out


def test_a_value_in_clear_in_sensitive_is_flagged(data_dir, capsysbinary, caplog):
    """A plaintext value where an envelope should be is printed with a warning that names the event and
    the field, and the command exits 1."""
    _, record = _edit_line(data_dir, 1, lambda record: record["sensitive"].update(ssn="123-45-6789"))

    status, out, _ = cat(capsysbinary, "--data-dir", data_dir, "--decrypt")
    assert status == 1
    assert len(out.splitlines()) == 40
    assert f"event {record['event_id']}: sensitive 'ssn' not an envelope but a value in clear" in caplog.text


def test_the_installed_command_exits_2_without_a_traceback(tmp_path):
    """Run as a process: exit status 2, one line on stderr, no Python traceback."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from auditship.query.cli import main; sys.exit(main())",
            "cat",
            str(tmp_path / "x.zst"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_the_data_dir_defaults_to_the_environment(data_dir, capsysbinary, monkeypatch):
    """Without --data-dir, AUDITSHIP_DATA_DIR names the data directory."""
    monkeypatch.setenv("AUDITSHIP_DATA_DIR", str(data_dir))
    status, out, _ = cat(capsysbinary)
    assert status == 0 and len(out.splitlines()) == 40


def test_a_reader_that_goes_away_is_not_an_error(tmp_path):
    """`audit-query cat | head -1`: when the pipe closes, the command exits 0 and says nothing."""
    data = tmp_path / "data"
    write(data, Keyring.load_or_create(data / "keys"), range(1, 1001), max_file_size=10**9)
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from auditship.query.cli import main; sys.exit(main())",
            "cat",
            "--data-dir",
            str(data),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.readline().startswith(b"{")
    process.stdout.close()
    assert process.wait(timeout=60) == 0
    assert process.stderr.read() == b""
    process.stderr.close()
