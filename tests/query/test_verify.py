"""`audit-query verify` on what a real agent wrote: valid after rotations, max_files, compaction and
retention; and each kind of tampering reported with its verdict, on the object it touched, exit 1."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import msgspec
import pytest
import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from auditship.agents.cli import main as agent_main
from auditship.ondisk import file_sink
from auditship.ondisk.digests import (
    chain_dir,
    digest_name,
    encode_body,
    encode_file,
    key_id_of,
    numbers,
    read_digest,
)
from auditship.ondisk.lake_layout import live_parts, partitions, parts
from auditship.query.cli import main
from shipper import AuditConfig, AuditContext, AuditLogger
from tests.agentproc import AgentDirs
from tests.query.agent_digests import Written, write

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def written() -> Iterator[Written]:
    dirs = AgentDirs()
    yield write(dirs)
    dirs.cleanup()


class Copy(NamedTuple):
    data: Path
    keys: Path


@pytest.fixture
def copy(written: Written, tmp_path: Path) -> Copy:
    """The agent's data and keys, copied for the test to tamper with."""
    data, keys = tmp_path / "data", tmp_path / "keys"
    shutil.copytree(written.data, data, symlinks=True)
    shutil.copytree(written.keys, keys, symlinks=True)
    return Copy(data, keys)


def verify(copy: Copy, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    status = main(
        ["verify", "--data-dir", str(copy.data), "--keys-dir", str(copy.keys), "--format", "json", *args]
    )
    out = capsys.readouterr().out
    return status, msgspec.json.decode(out) if out else {}


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {finding["path"]: finding["verdict"] for finding in report["findings"]}


def not_valid(report: dict[str, Any]) -> dict[str, str]:
    return {path: verdict for path, verdict in verdicts(report).items() if verdict != "valid"}


def closed_files(copy: Copy) -> list[Path]:
    return [closed.path for closed in file_sink.closed_files(copy.data / "files", "audit")]


def lake_parts(copy: Copy) -> list[Path]:
    return [part.path for directory in partitions(copy.data / "lake") for part in parts(directory)]


def relative(copy: Copy, path: Path) -> str:
    return path.relative_to(copy.data).as_posix()


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def newest_digest(copy: Copy, sink: str) -> Path:
    directory = chain_dir(copy.data, sink)
    return directory / digest_name(numbers(directory)[-1])


def test_what_the_agent_wrote_verifies_after_rotation_max_files_compaction_and_retention(
    copy: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every digest and object valid, exit 0; the removals are declared: closed files past max_files and
    past retention, 2020's parts, and the parts compaction merged."""
    status, report = verify(copy, capsys)
    assert not_valid(report) == {}
    assert status == 0 and report["ok"]
    reasons = {
        removal.reason
        for sink in ("file", "parquet")
        for number in numbers(chain_dir(copy.data, sink))
        for removal in read_digest(chain_dir(copy.data, sink) / digest_name(number)).digest.removed
    }
    assert reasons == {"max_files", "retention", "compaction"}
    assert not any("2020-" in str(path) for path in lake_parts(copy)), "retention removed 2020"
    assert report["summary"]["removed"] >= 6


def test_one_byte_changed_in_a_closed_file_is_modified(
    copy: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    target = closed_files(copy)[-1]
    flip_byte(target, target.stat().st_size // 2)
    status, report = verify(copy, capsys)
    assert status == 1
    assert not_valid(report) == {relative(copy, target): "modified"}


def test_one_byte_changed_in_the_current_file_is_modified(
    copy: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    """A letter of a message: the line still parses, with its seq; only the hash tells."""
    current = copy.data / "files" / "audit.jsonl"
    content = current.read_bytes()
    current.write_bytes(content.replace(b"read document", b"read documenT", 1))
    status, report = verify(copy, capsys)
    assert status == 1
    assert not_valid(report) == {"files/audit.jsonl": "modified"}


def test_a_changed_seq_in_a_line_is_modified_not_a_gap(
    copy: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    """The second line claims the first line's WAL seq: one seq is then missing, yet nothing was deleted."""
    current = copy.data / "files" / "audit.jsonl"
    lines = current.read_bytes().split(b"\n")
    first, second = (re.search(rb'"wal_seq":(\d+)', line) for line in lines[:2])
    assert first is not None and second is not None
    lines[1] = lines[1].replace(second[0], first[0])
    current.write_bytes(b"\n".join(lines))
    status, report = verify(copy, capsys)
    assert status == 1
    assert not_valid(report) == {"files/audit.jsonl": "modified"}
    [detail] = [f["detail"] for f in report["findings"] if f["verdict"] != "valid"]
    assert f"repeats WAL seq {int(first[1])}" in detail


def test_one_byte_changed_in_a_part_is_modified(copy: Copy, capsys: pytest.CaptureFixture[str]) -> None:
    target = lake_parts(copy)[0]
    flip_byte(target, target.stat().st_size // 2)
    status, report = verify(copy, capsys)
    assert status == 1
    assert verdicts(report)[relative(copy, target)] == "modified"


def test_a_line_deleted_from_the_current_file_is_a_sequence_gap(
    copy: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    current = copy.data / "files" / "audit.jsonl"
    lines = current.read_bytes().split(b"\n")
    current.write_bytes(b"\n".join(lines[:2] + lines[3:]))
    status, report = verify(copy, capsys)
    assert status == 1
    assert not_valid(report) == {"files/audit.jsonl": "sequence gap"}


def test_a_line_deleted_from_a_closed_file_is_a_sequence_gap(
    copy: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    """Decompressed, one line cut, compressed again: a well-formed file one event short."""
    target = closed_files(copy)[-1]
    lines = zstandard.ZstdDecompressor().decompressobj().decompress(target.read_bytes()).split(b"\n")
    target.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines[:5] + lines[6:])))
    status, report = verify(copy, capsys)
    assert status == 1
    assert not_valid(report) == {relative(copy, target): "sequence gap"}
    gap = next(f for f in report["findings"] if f["verdict"] == "sequence gap")
    assert "1 lines gone" in gap["detail"]


def test_two_lines_swapped_are_reordered(copy: Copy, capsys: pytest.CaptureFixture[str]) -> None:
    current = copy.data / "files" / "audit.jsonl"
    lines = current.read_bytes().split(b"\n")
    lines[3], lines[4] = lines[4], lines[3]
    current.write_bytes(b"\n".join(lines))
    status, report = verify(copy, capsys)
    assert status == 1
    assert not_valid(report) == {"files/audit.jsonl": "reordered"}


def test_a_deleted_closed_file_is_missing(copy: Copy, capsys: pytest.CaptureFixture[str]) -> None:
    target = closed_files(copy)[0]
    target.unlink()
    status, report = verify(copy, capsys)
    assert status == 1
    assert not_valid(report) == {relative(copy, target): "missing"}


def test_a_deleted_part_is_missing(copy: Copy, capsys: pytest.CaptureFixture[str]) -> None:
    target = lake_parts(copy)[-1]
    target.unlink()
    status, report = verify(copy, capsys)
    assert status == 1
    assert not_valid(report) == {relative(copy, target): "missing"}


def test_a_deleted_days_partition_is_every_part_of_it_missing(
    copy: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    day = sorted((copy.data / "lake").glob("date=*"))[-1]
    gone = [relative(copy, path) for path in live_parts(copy.data / "lake") if day in path.parents]
    shutil.rmtree(day)
    status, report = verify(copy, capsys)
    assert status == 1
    assert gone and not_valid(report) == dict.fromkeys(gone, "missing")


def test_a_part_replaced_by_one_missing_a_row_is_a_sequence_gap(
    copy: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    """The part rewritten by DuckDB without its third row: a valid Parquet file, one row short, its WAL
    seq named."""
    target = lake_parts(copy)[0]
    db = duckdb.connect()
    (seq,) = db.execute("SELECT wal_seq FROM read_parquet(?) LIMIT 1 OFFSET 2", [str(target)]).fetchone() or (
        0,
    )
    staged = target.with_name("staged.parquet")
    db.execute(
        f"COPY (SELECT * FROM read_parquet('{target}') WHERE wal_seq <> {seq}) TO '{staged}' (FORMAT parquet)"
    )
    db.close()
    staged.replace(target)
    status, report = verify(copy, capsys)
    assert status == 1
    assert not_valid(report) == {relative(copy, target): "sequence gap"}
    assert "1 rows gone" in next(f["detail"] for f in report["findings"] if f["verdict"] != "valid")


def test_the_newest_digest_deleted_is_missing(copy: Copy, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing after it links to it: the run record in keys_dir says how far the chain reaches. What it
    listed is no longer named by any digest."""
    newest = newest_digest(copy, "parquet")
    newest.unlink()
    status, report = verify(copy, capsys)
    assert status == 1
    assert verdicts(report)[relative(copy, newest)] == "missing"


def test_the_newest_digest_edited_has_an_invalid_signature(
    copy: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its claims are not trusted: the current file it covered is no longer covered, and since the run
    record says the sink stopped after that digest, what follows the digest before is unexpected."""
    newest = newest_digest(copy, "file")
    newest.write_bytes(newest.read_bytes().replace(b'"final":true', b'"final":false'))
    status, report = verify(copy, capsys)
    assert status == 1
    assert verdicts(report)[relative(copy, newest)] == "signature invalid"
    assert "pending" not in verdicts(report).values()


def test_a_digest_signed_with_another_key_has_an_invalid_signature(
    copy: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    """An attacker's own key, its id in the digest: signed correctly, by a key verify does not trust."""
    newest = newest_digest(copy, "parquet")
    stored = read_digest(newest)
    forger = Ed25519PrivateKey.generate()
    forged_id = key_id_of(forger.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    body = encode_body(msgspec.structs.replace(stored.digest, key_id=forged_id))
    newest.write_bytes(encode_file(body, forger.sign(body)))
    status, report = verify(copy, capsys)
    assert status == 1
    finding = next(f for f in report["findings"] if f["path"] == relative(copy, newest))
    assert finding["verdict"] == "signature invalid"
    assert forged_id in finding["detail"]


def test_a_digest_changed_in_the_middle_breaks_the_chain_after_it(
    copy: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = chain_dir(copy.data, "file")
    middle = directory / digest_name(3)
    middle.write_bytes(middle.read_bytes().replace(b'"rotation"', b'"interval"'))
    status, report = verify(copy, capsys)
    assert status == 1
    assert verdicts(report)[relative(copy, middle)] == "signature invalid"
    assert verdicts(report)[relative(copy, directory / digest_name(4))] == "chain broken"


def test_the_data_directory_rolled_back_to_an_earlier_copy_misses_the_newer_digests(
    written: Written, copy: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every file of the earlier copy is consistent with its own digests; only the run records in keys_dir,
    which the copy did not roll back, say that digests came after."""
    shutil.rmtree(copy.data)
    shutil.copytree(written.earlier, copy.data, symlinks=True)
    status, report = verify(copy, capsys)
    assert status == 1
    missing = {path for path, verdict in not_valid(report).items() if verdict == "missing"}
    assert any(path.startswith("digests/file/") for path in missing)
    assert any(path.startswith("digests/parquet/") for path in missing)


def test_an_auditor_elsewhere_verifies_with_the_exported_public_key_alone(
    copy: Copy, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """No keys_dir on that machine: the public key file is enough; the report notes that the newest
    digests could not be held to a run record."""
    config = tmp_path / "agent.toml"
    config.write_text(f'data_dir = "{copy.data}"\nkeys_dir = "{copy.keys}"\n')
    exported = tmp_path / "agent.pem"
    assert agent_main(["keys", "export-public", "--config", str(config), "--output", str(exported)]) == 0
    capsys.readouterr()
    shutil.rmtree(copy.keys)
    status, report = verify(copy, capsys, "--public-key", str(exported))
    assert status == 0 and report["ok"]
    assert any("no run record" in note for note in report["summary"]["notes"])


def test_bad_arguments_and_a_directory_without_digests_are_usage_errors(
    copy: Copy, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["verify", "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "no such data directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    (tmp_path / "public").mkdir()
    shutil.copy(next(copy.keys.glob("signing-*.pub")), tmp_path / "public")
    assert (
        main(["verify", "--data-dir", str(tmp_path / "empty"), "--keys-dir", str(tmp_path / "public")]) == 2
    )
    assert "no digests of any sink" in capsys.readouterr().err
    assert main(["verify", "--data-dir", str(copy.data), "--keys-dir", str(tmp_path / "empty")]) == 2
    assert "no public key to verify with" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["verify", "--sink", "sql"])
    assert exited.value.code == 2


def test_the_text_report_names_each_problem_and_says_not_verified(
    copy: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    target = lake_parts(copy)[0]
    target.unlink()
    status = main(["verify", "--data-dir", str(copy.data), "--keys-dir", str(copy.keys)])
    out = capsys.readouterr().out
    assert status == 1
    assert f"MISSING           parquet  part     {relative(copy, target)}" in out
    assert "NOT VERIFIED" in out


def test_verify_from_python_through_the_logger(copy: Copy) -> None:
    """AuditLogger.verify, through the read-back entry point: the same report as a mapping."""
    config = AuditConfig()
    config.data_dir = copy.data
    logger = AuditLogger(config, AuditContext(service_name="auditor"))
    result = asyncio.run(logger.verify(keys_dir=copy.keys))
    assert result["ok"] and result["summary"]["sinks"] == ["file", "parquet"]
    lake_parts(copy)[0].unlink()
    result = asyncio.run(logger.verify(keys_dir=copy.keys, sink="parquet", end_time=datetime.now(UTC)))
    assert not result["ok"]
    assert [f["verdict"] for f in result["findings"] if f["verdict"] != "valid"] == ["missing"]
