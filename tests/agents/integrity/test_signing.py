"""The digests' signing key: made once in keys_dir, private, and its public half exported alone for an
auditor (`audit-agent keys export-public`)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from auditship.agents.cli import main
from auditship.agents.integrity.signing import Signer, rotate_if_older
from auditship.ondisk.digests import (
    SIGNING_KEY,
    DigestError,
    load_public_key,
    load_public_keys,
    public_key_path,
)


def config_beside(tmp_path: Path) -> Path:
    config = tmp_path / "agent.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    return config


def test_the_signing_key_is_made_once_private_with_its_public_key_beside_it(tmp_path: Path) -> None:
    first = Signer.load_or_create(tmp_path)
    again = Signer.load_or_create(tmp_path)
    assert again.key_id == first.key_id
    assert stat.S_IMODE((tmp_path / SIGNING_KEY).stat().st_mode) == 0o600
    key_id, public = load_public_key(public_key_path(tmp_path, first.key_id))
    assert key_id == first.key_id
    public.verify(first.sign(b"digest"), b"digest")


def test_export_public_prints_the_pem_an_auditor_verifies_with_and_its_key_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The PEM alone on stdout (so `> FILE` is the key file), the key id on stderr; with --output, the
    PEM in the file. Either loads as the signing key's public key."""
    config = config_beside(tmp_path)
    signer = Signer.load_or_create(tmp_path / "keys")

    assert main(["keys", "export-public", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in out
    assert f"key id: {signer.key_id}" in err
    (tmp_path / "stdout.pem").write_text(out)
    assert load_public_key(tmp_path / "stdout.pem")[0] == signer.key_id

    assert main(["keys", "export-public", "--config", str(config), "--output", str(tmp_path / "a.pem")]) == 0
    assert signer.key_id in capsys.readouterr().out
    assert load_public_key(tmp_path / "a.pem")[0] == signer.key_id


def test_export_public_without_a_signing_key_says_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "export-public", "--config", str(config_beside(tmp_path))]) == 2
    assert f"{tmp_path / 'keys' / SIGNING_KEY}: no signing key here" in capsys.readouterr().err


def test_rotating_replaces_the_private_key_and_keeps_every_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`keys rotate --signing`: a new key signs, the old private key is gone, both public keys stay,
    `keys list` shows both and export-public bundles both."""
    config = config_beside(tmp_path)
    old = Signer.load_or_create(tmp_path / "keys")
    old_private = (tmp_path / "keys" / SIGNING_KEY).read_bytes()

    assert main(["keys", "rotate", "--signing", "--config", str(config)]) == 0
    new = Signer.load(tmp_path / "keys")
    assert new.key_id != old.key_id
    assert "signing key" in capsys.readouterr().out
    assert (tmp_path / "keys" / SIGNING_KEY).read_bytes() != old_private
    assert stat.S_IMODE((tmp_path / "keys" / SIGNING_KEY).stat().st_mode) == 0o600

    assert main(["keys", "list", "--config", str(config)]) == 0
    listed = capsys.readouterr().out
    assert f"signing {old.key_id}" in listed and f"signing {new.key_id}" in listed
    assert [line.split()[-1] for line in listed.splitlines() if line.startswith("signing")] == [
        "retired",
        "active",
    ]
    assert (
        main(["keys", "export-public", "--config", str(config), "--output", str(tmp_path / "all.pem")]) == 0
    )
    assert set(load_public_keys(tmp_path / "all.pem")) == {old.key_id, new.key_id}
    with pytest.raises(DigestError, match="holds 2 public keys, not one"):
        load_public_key(tmp_path / "all.pem")


def test_the_signing_key_rotates_once_it_is_older_than_the_bound_and_not_before(tmp_path: Path) -> None:
    """Its age is its public key file's: a day short of the bound keeps it, past it a new key signs."""
    first = Signer.load_or_create(tmp_path)
    made = public_key_path(tmp_path, first.key_id).stat().st_mtime
    year = 365 * 86400.0
    assert rotate_if_older(tmp_path, year, made + year - 86400) is None
    assert Signer.load(tmp_path).key_id == first.key_id
    rotated = rotate_if_older(tmp_path, year, made + year + 1)
    assert rotated is not None and rotated[0] == first.key_id
    current = Signer.load(tmp_path)
    assert current.key_id == rotated[1] != first.key_id
    # The new key was made just now: a look now leaves it.
    renewed = public_key_path(tmp_path, current.key_id).stat().st_mtime
    assert rotate_if_older(tmp_path, year, renewed + 60) is None
    load_public_key(public_key_path(tmp_path, first.key_id))  # the old public key stays, for verifying
