"""A sink's chain: numbered, linked, signed, and never papering over a digest deleted or changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditship.agents.integrity.chain import ChainWriter, Change
from auditship.agents.integrity.removals import record_removals
from auditship.agents.integrity.signing import Signer, rotate_signing_key
from auditship.ondisk.digests import (
    DigestedObject,
    chain_dir,
    digest_name,
    load_public_key,
    public_key_path,
    read_digest,
    read_run_record,
    verify_signature,
)


@pytest.fixture
def writer(tmp_path: Path) -> ChainWriter:
    return ChainWriter(tmp_path / "data", "file", Signer.load_or_create(tmp_path / "keys"), tmp_path / "keys")


def test_digests_are_numbered_linked_signed_and_carry_what_the_sink_needs(
    writer: ChainWriter, tmp_path: Path
) -> None:
    claim = DigestedObject("files/audit.jsonl", "current", 10, "ab" * 32, 1, 3, 3)
    first = writer.append(Change(reason="start", seq_through=3, current=claim, closed_through=0))
    second = writer.append(Change(reason="interval", gaps=[(4, 6)], seq_through=9))
    assert (first.digest.number, second.digest.number) == (1, 2)
    assert second.digest.previous_sha256 == first.sha256
    assert second.digest.current == claim, "carried over"
    signer = Signer.load(tmp_path / "keys")
    key_id, public = load_public_key(public_key_path(tmp_path / "keys", signer.key_id))
    assert verify_signature(second, {key_id: public}) is None
    record = read_run_record(tmp_path / "keys", "file")
    assert record is not None and (record.number, record.sha256, record.seq_through) == (2, second.sha256, 9)


def test_after_the_newest_digest_is_deleted_the_chain_goes_on_from_the_run_record(
    writer: ChainWriter, tmp_path: Path
) -> None:
    """The next digest takes the next number after the deleted one and links to what the agent wrote,
    so the hole and the deletion stay visible."""
    writer.append(Change(reason="start"))
    second = writer.append(Change(reason="interval", seq_through=5))
    second.path.unlink()
    fresh = ChainWriter(tmp_path / "data", "file", Signer.load(tmp_path / "keys"), tmp_path / "keys")
    third = fresh.append(Change(reason="start"))
    assert third.digest.number == 3
    assert third.digest.previous_sha256 == second.sha256
    assert third.digest.seq_through == 5


def test_a_changed_newest_digest_is_not_linked_to(writer: ChainWriter) -> None:
    writer.append(Change(reason="start"))
    second = writer.append(Change(reason="interval"))
    second.path.write_bytes(second.path.read_bytes().replace(b'"interval"', b'"rotation"'))
    third = writer.append(Change(reason="shutdown", final=True))
    assert third.digest.previous_sha256 == second.sha256, "the digest as the agent wrote it"
    assert read_digest(second.path).sha256 != second.sha256


def test_removals_need_no_record_without_a_chain_and_are_refused_without_a_key(tmp_path: Path) -> None:
    data, keys = tmp_path / "data", tmp_path / "keys"
    gone = [data / "files" / "audit-1-10.jsonl.zst"]
    assert record_removals(data, keys, "file", gone, reason="retention", policy="p") is None
    assert not chain_dir(data, "file").exists()
    chain_dir(data, "file").mkdir(parents=True)
    (chain_dir(data, "file") / digest_name(1)).write_text("{}\n{}\n")
    problem = record_removals(data, keys, "file", gone, reason="retention", policy="p")
    assert problem is not None and "no signing key" in problem


def test_a_writer_follows_a_signing_key_rotation_and_vouches_for_the_old_keys_digests(
    writer: ChainWriter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After `keys rotate --signing` the running writer signs its next digest with the new key, and links
    it to the newest digest (the old key's, still its own: not taken for a forgery)."""
    first = writer.append(Change(reason="start"))
    old_id, new_id = rotate_signing_key(tmp_path / "keys")
    second = writer.append(Change(reason="interval"))

    assert (first.digest.key_id, second.digest.key_id) == (old_id, new_id)
    assert second.digest.previous_sha256 == first.sha256
    assert "not the digest this agent wrote" not in caplog.text
    keys = {old_id: load_public_key(public_key_path(tmp_path / "keys", old_id))[1]}
    assert verify_signature(first, keys) is None
    assert "not a trusted signing key" in (verify_signature(second, keys) or "")
