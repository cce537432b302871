"""The keys directory: apart from the data directory, the agent's own, and where an older agent's field
keys move at the first start, still opening what they sealed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import msgspec
import pytest

from auditship.agents.config import AgentConfig, default_keys_dir, load_config
from auditship.agents.crypto import Keyring, decrypt_sensitive, encrypt_sensitive
from auditship.agents.crypto.keys_dir import field_keys_dir, migrate_legacy_keys, prepare_keys_dir
from auditship.agents.errors import ConfigError
from auditship.ondisk.keys import SPOOL_KEY
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType
from tests.agentproc import QUICK_CONFIG, AgentDirs, RunningAgent, file_events
from tests.waiting import wait_for

SECRET = "4111-1111-1111-1111"


def sealed_by(keyring: Keyring) -> AuditEvent:
    return encrypt_sensitive(
        AuditEvent(event_type=AuditEventType.DATA_READ, sensitive={"card": SECRET}), keyring
    )


def test_keys_dir_defaults_beside_the_config_file_and_never_inside_the_data_directory(tmp_path: Path) -> None:
    """An agent.toml without keys_dir puts the keys in keys/ beside it; a config inside the data directory
    (an embedded agent's) and no config at all put them beside the data directory, as DATA-keys."""
    data = tmp_path / "var" / "data"
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "agent.toml").write_text(f'data_dir = "{data}"\n')
    assert load_config(etc / "agent.toml").keys_path == etc / "keys"
    data.mkdir(parents=True)
    (data / "embedded-agent.toml").write_text(f'data_dir = "{data}"\n')
    assert load_config(data / "embedded-agent.toml").keys_path == tmp_path / "var" / "data-keys"
    assert AgentConfig(data_dir=str(data)).keys_path == tmp_path / "var" / "data-keys"
    assert default_keys_dir(data) == tmp_path / "var" / "data-keys"
    (etc / "agent.toml").write_text(f'data_dir = "{data}"\nkeys_dir = "{tmp_path / "vault"}"\n')
    assert load_config(etc / "agent.toml").keys_path == tmp_path / "vault"


def test_an_older_agents_field_keys_move_to_keys_dir_and_still_open_what_they_sealed(tmp_path: Path) -> None:
    """Every field key, `active` and the spool key leave data/keys for keys_dir, byte for byte; the CURVE
    keys stay; an envelope sealed before the move opens with the keyring in keys_dir."""
    data, keys = tmp_path / "data", tmp_path / "keys"
    old = Keyring.load_or_create(data / "keys")
    older_key = old.active_key_id
    sealed_before = sealed_by(old)
    old.rotate()
    spool_key = (data / "keys" / SPOOL_KEY).read_bytes()
    (data / "keys" / "curve").mkdir()

    moved = migrate_legacy_keys(data / "keys", keys)

    assert sorted(moved) == sorted([f"{older_key}.key", f"{old.active_key_id}.key", SPOOL_KEY, "active"])
    assert sorted(p.name for p in (data / "keys").iterdir()) == ["curve"]
    keyring = Keyring.load(keys)
    assert keyring.active_key_id == old.active_key_id
    assert (keys / SPOOL_KEY).read_bytes() == spool_key
    assert decrypt_sensitive(sealed_before, keyring).sensitive == {"card": SECRET}
    assert migrate_legacy_keys(data / "keys", keys) == [], "a second start has nothing to move"


def test_a_legacy_key_beside_a_keyring_already_in_keys_dir_is_kept_for_decryption(tmp_path: Path) -> None:
    """keys_dir's own keyring decides which key encrypts; a field key found in the old place is copied
    beside it, so that what it sealed still opens."""
    data, keys = tmp_path / "data", tmp_path / "keys"
    old = Keyring.load_or_create(data / "keys")
    sealed_before = sealed_by(old)
    new = Keyring.load_or_create(keys)

    migrate_legacy_keys(data / "keys", keys)

    keyring = Keyring.load(keys)
    assert keyring.active_key_id == new.active_key_id
    assert decrypt_sensitive(sealed_before, keyring).sensitive == {"card": SECRET}
    assert not (data / "keys" / "active").exists()


def test_readers_find_the_field_keys_where_an_older_agent_left_them_until_they_move(tmp_path: Path) -> None:
    data, keys = tmp_path / "data", tmp_path / "keys"
    Keyring.load_or_create(data / "keys")
    assert field_keys_dir(keys, data) == data / "keys"
    migrate_legacy_keys(data / "keys", keys)
    assert field_keys_dir(keys, data) == keys


def test_keys_dir_is_made_private_and_a_link_or_another_users_directory_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    prepare_keys_dir(keys)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    link = tmp_path / "link"
    link.symlink_to(keys)
    with pytest.raises(ConfigError, match="not a directory"):
        prepare_keys_dir(link)
    if os.geteuid() == 0:  # making a directory another user owns needs root
        other = tmp_path / "other"
        other.mkdir()
        os.chown(other, 4242, 4242)
        with pytest.raises(ConfigError, match="owned by uid 4242"):
            prepare_keys_dir(other)


def test_an_agent_started_on_an_older_data_directory_moves_its_keys_and_decrypts_old_and_new(
    dirs: AgentDirs,
) -> None:
    """A real agent, started where an older one left data/keys: its keys end up in keys_dir (beside the
    config), none stay in the data directory, events it writes now use the same field key, and an
    envelope sealed before the upgrade still opens."""
    old = Keyring.load_or_create(dirs.data / "keys")
    sealed_before = sealed_by(old)
    agent = RunningAgent(dirs, QUICK_CONFIG).start()
    try:
        emitter = Emitter(agent.config.intake_endpoint)
        emitter.emit(AuditEvent(event_type=AuditEventType.DATA_READ, sensitive={"card": SECRET}))
        assert emitter.flush(30)
        emitter.close()
        written = wait_for(lambda: file_events(dirs.data), 30, "the event in the file")
    finally:
        agent.stop()
    assert not [path.name for path in (dirs.data / "keys").glob("*") if path.name != "curve"]
    keyring = Keyring.load(dirs.keys)
    assert keyring.active_key_id == old.active_key_id
    assert decrypt_sensitive(sealed_before, keyring).sensitive == {"card": SECRET}
    event = msgspec.convert(written[0], AuditEvent)
    assert event.sensitive["card"].startswith(f"aesgcm2:{old.active_key_id}:")
    assert decrypt_sensitive(event, keyring).sensitive == {"card": SECRET}
