"""The keyring creates private keys once, survives concurrent starts, rotates, and names bad files."""

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from auditship.agents.crypto import Keyring
from auditship.ondisk.errors import KeyringError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """A umask that filters nothing, so only explicit modes can make files private."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_first_load_creates_private_directory_and_keys(tmp_path, open_umask):
    """keys/ is 0700 and every key file 0600 even under umask 0; the field key is 32 raw bytes."""
    keys = tmp_path / "data" / "keys"
    keyring = Keyring.load_or_create(keys)

    assert mode(keys) == 0o700
    key_file = keys / f"{keyring.active_key_id}.key"
    assert key_file.stat().st_size == 32
    assert mode(key_file) == 0o600
    assert mode(keys / "spool-x25519.key") == 0o600
    assert mode(keys / "active") == 0o600
    assert keyring.active_key_id.startswith("f-") and len(keyring.active_key_id) == 10
    assert len(keyring.spool_public_key()) == 32
    assert not [p for p in keys.iterdir() if p.name.endswith(".tmp")]


def test_an_existing_wider_key_directory_is_made_private(tmp_path):
    """A keys/ directory someone created 0755 is tightened to 0700."""
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o755)
    keys.chmod(0o755)
    Keyring.load_or_create(keys)
    assert mode(keys) == 0o700


def test_second_load_finds_the_same_keys(tmp_path):
    """Loading again creates nothing and yields the same active key and spool key pair."""
    first = Keyring.load_or_create(tmp_path)
    again = Keyring.load_or_create(tmp_path)
    assert again.active_key_id == first.active_key_id
    assert again.spool_public_key() == first.spool_public_key()
    assert len(list(tmp_path.glob("f-*.key"))) == 1


def _start(keys: str, barrier, results) -> None:
    barrier.wait()
    keyring = Keyring.load_or_create(Path(keys))
    results.put((keyring.active_key_id, keyring.spool_public_key()))


def test_concurrent_first_starts_agree_on_one_keyring(tmp_path):
    """Eight processes initialising a fresh keys/ at the same moment all end up with the same keys."""
    context = multiprocessing.get_context("spawn")
    workers = 8
    barrier = context.Barrier(workers)
    results = context.Queue()
    processes = [
        context.Process(target=_start, args=(str(tmp_path / "keys"), barrier, results))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    seen = {results.get(timeout=60) for _ in range(workers)}
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    assert len(seen) == 1
    ((active, _),) = seen
    assert [p.stem for p in (tmp_path / "keys").glob("f-*.key")] == [active]


def test_rotation_makes_a_new_active_key_and_keeps_the_old(tmp_path):
    """After rotate() the new key is active, for this and every later load; the old one still loads."""
    keyring = Keyring.load_or_create(tmp_path)
    old = keyring.active_key_id
    new = keyring.rotate()

    assert new != old
    assert keyring.active_key_id == new
    assert Keyring.load_or_create(tmp_path).active_key_id == new
    assert keyring.cipher(old) is not None
    assert sorted(keyring.key_ids()) == sorted([old, new])


def test_a_wrong_size_key_file_is_named(tmp_path):
    """A truncated field key is an error naming the file and the size found."""
    keyring = Keyring.load_or_create(tmp_path)
    key_file = tmp_path / f"{keyring.active_key_id}.key"
    key_file.write_bytes(b"short")

    with pytest.raises(KeyringError, match=rf"{key_file}: expected a 32-byte key, found 5 bytes"):
        Keyring.load_or_create(tmp_path)


def test_an_unreadable_key_file_is_named(tmp_path):
    """A key file that cannot be opened (here a symlink, refused by O_NOFOLLOW) is an error naming it."""
    keyring = Keyring.load_or_create(tmp_path)
    spool_key = tmp_path / "spool-x25519.key"
    spool_key.unlink()
    spool_key.symlink_to(tmp_path / f"{keyring.active_key_id}.key")

    with pytest.raises(KeyringError, match=rf"{spool_key}: cannot read key file"):
        Keyring.load(tmp_path).spool_public_key()


def test_a_garbled_active_pointer_is_named(tmp_path):
    """An `active` file that holds no key id is an error naming it."""
    Keyring.load_or_create(tmp_path)
    (tmp_path / "active").write_text("../../etc/passwd\n")
    with pytest.raises(KeyringError, match=r"active: expected a key id"):
        Keyring.load_or_create(tmp_path)


def test_key_ids_from_data_cannot_name_other_files(tmp_path):
    """A key id taken from an envelope is checked before it becomes a path."""
    keyring = Keyring.load_or_create(tmp_path)
    with pytest.raises(KeyringError, match="not a field key id"):
        keyring.cipher("../spool-x25519")


def test_load_without_create_refuses_a_missing_keyring(tmp_path):
    """Readers use load(), which creates nothing where there is no keyring."""
    with pytest.raises(KeyringError, match="no keyring here"):
        Keyring.load(tmp_path / "keys")
    assert not (tmp_path / "keys").exists()
