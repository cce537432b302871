"""`audit-query cat` prints every event of the file sink's files in order, and fails in one line."""

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import zstandard

from agents.config import FileSinkConfig
from agents.crypto import Keyring
from agents.sinks.file import FileSink
from agents.sinks.formats import encode_text
from query.cli import main
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
    assert b" sensitive.ssn=aesgcm1:" in lines[0]


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
    path.write_bytes(b"".join(encode_text(e.seq, e.event) for e in entries(range(1, 3))))
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
def test_corrupt_files_are_one_line_errors_naming_the_file(tmp_path, capsysbinary, make, expected):
    """A corrupt or truncated compressed file, or a line that is no event, exits 2 naming the file."""
    files = tmp_path / "files"
    files.mkdir()
    make(files)
    status, _, err = cat(capsysbinary, "--data-dir", tmp_path)
    assert status == 2
    assert err.count("\n") == 1
    assert str(files / "audit-1-1.jsonl") in err and expected in err


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
    assert status == 2 and f"{tmp_path / 'keys'}: no keyring here" in err


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


def test_the_installed_command_exits_2_without_a_traceback(tmp_path):
    """Run as a process: exit status 2, one line on stderr, no Python traceback."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from query.cli import main; sys.exit(main())",
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
            "import sys; from query.cli import main; sys.exit(main())",
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
