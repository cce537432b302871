"""Field key rotation: by hand from another process (followed within a second), by count and by age,
with use counts in keys_dir that a restart or a crash does not reset, and `keys list`."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from auditship.agents.cli import main
from auditship.agents.config import parse_config
from auditship.agents.crypto import Keyring, decrypt_sensitive, encrypt_sensitive
from auditship.agents.crypto.key_list import field_keys
from auditship.agents.crypto.key_uses import RESERVE_BLOCK, read_uses, uses_path
from auditship.agents.crypto.rotation import DAY_S, Rotation
from auditship.agents.errors import ConfigError
from auditship.ondisk.envelope import PREFIX
from shipper.event import AuditEvent, AuditEventType
from tests.waiting import wait_for

PINNED = 1_800_000_000.0
"""2027-01-15: the pinned clock of the age tests."""


def sealed(keyring: Keyring, **values: str) -> AuditEvent:
    event = AuditEvent(event_type=AuditEventType.DATA_READ, sensitive=values or {"card": "4111"})
    return encrypt_sensitive(event, keyring)


def key_of(event: AuditEvent) -> str:
    (envelope,) = {value.removeprefix(PREFIX).split(":")[0] for value in event.sensitive.values()}
    return envelope


def test_a_running_keyring_follows_a_rotation_made_by_another_process(tmp_path: Path) -> None:
    """What `keys rotate` does from its own process reaches a keyring in use (the intake's) within a
    second, with no restart; what the old key sealed still opens."""
    running = Keyring.load_or_create(tmp_path, Rotation(1 << 30, 90))
    before = sealed(running)
    new = Keyring.load(tmp_path).rotate("test")

    wait_for(lambda: key_of(sealed(running)) == new, 10, "the running keyring to seal under the new key")
    assert key_of(before) != new
    assert decrypt_sensitive(before, running).sensitive == {"card": "4111"}


def test_the_intake_keyring_rotates_before_a_key_seals_more_than_the_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With a bound of 3 values, the 4th value is sealed under a new key, which is logged; the old key's
    count is written exact (3); an event of two values counts two."""
    keyring = Keyring.load_or_create(tmp_path, Rotation(3, 90))
    first = keyring.active_key_id
    assert [key_of(sealed(keyring)) for _ in range(3)] == [first] * 3
    with caplog.at_level(logging.INFO, logger="auditship.crypto"):
        second = key_of(sealed(keyring))
    assert second != first
    assert f"replacing {first} (field key {first} reached keys.rotate_after_encryptions = 3)" in caplog.text
    assert read_uses(uses_path(tmp_path, first)) == (3, 3)
    assert key_of(sealed(keyring, a="1", b="2")) == second
    assert key_of(sealed(keyring)) != second, "1 + 2 values sealed; one more would pass 3"


def test_use_counts_survive_a_restart_and_err_high_after_a_crash(tmp_path: Path) -> None:
    """A clean close writes the exact count, which the next start goes on from; after a crash (no
    close) the next start takes the reserved count, above anything sealed, so it rotates at once."""
    keyring = Keyring.load_or_create(tmp_path, Rotation(5, 90))
    first = keyring.active_key_id
    for _ in range(3):
        sealed(keyring)
    keyring.close()
    assert read_uses(uses_path(tmp_path, first)) == (3, 3)

    restarted = Keyring.load_or_create(tmp_path, Rotation(5, 90))
    assert [key_of(sealed(restarted)) for _ in range(2)] == [first] * 2
    # No close: a crash. The file reserves a block beyond what was sealed.
    sealed_so_far, reserved = read_uses(uses_path(tmp_path, first)) or (0, 0)
    assert sealed_so_far <= 5 <= reserved == 4 + RESERVE_BLOCK

    after_crash = Keyring.load_or_create(tmp_path, Rotation(1 << 16, 90))
    assert key_of(sealed(after_crash)) != first


def test_an_unreadable_count_rotates_the_key_rather_than_guess(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keyring = Keyring.load_or_create(tmp_path, Rotation(1 << 30, 90))
    first = keyring.active_key_id
    uses_path(tmp_path, first).write_text("garbage\n")
    with caplog.at_level(logging.WARNING, logger="auditship.crypto"):
        assert key_of(sealed(keyring)) != first
    assert f"{first}.uses: expected '<count> <reserved>'" in caplog.text


def test_the_intake_keyring_rotates_a_key_older_than_the_bound_on_a_pinned_clock(tmp_path: Path) -> None:
    """A key made 89 days before the pinned now is used; two days later it is replaced, and the new key's
    age counts from then (it is not replaced again)."""
    now = [PINNED]
    keyring = Keyring.load_or_create(tmp_path, Rotation(1 << 30, 90), clock=lambda: now[0])
    first = keyring.active_key_id
    made = PINNED - 89 * DAY_S
    os.utime(tmp_path / f"{first}.key", (made, made))

    assert key_of(sealed(keyring)) == first
    now[0] = PINNED + 2 * DAY_S
    second = key_of(sealed(keyring))
    assert second != first
    assert key_of(sealed(keyring)) == second
    assert (tmp_path / f"{second}.key").stat().st_mtime == PINNED + 2 * DAY_S


def test_a_bound_above_two_to_the_32_is_a_config_error() -> None:
    assert parse_config("[keys]\nrotate_after_encryptions = 1073741824\n").keys.rotate_after_days == 90
    with pytest.raises(ConfigError, match=r"keys.rotate_after_encryptions: must be at most 2\^32"):
        parse_config("[keys]\nrotate_after_encryptions = 4294967297\n")


def test_keys_rotate_and_list_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`keys list` shows each field key with its creation time, use count and state; `keys rotate` makes
    a new active key and retires the old one."""
    keys = tmp_path / "keys"
    config = tmp_path / "agent.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nkeys_dir = "{keys}"\n')
    assert main(["keys", "list", "--config", str(config)]) == 0
    assert "field keys: none in" in capsys.readouterr().out

    keyring = Keyring.load_or_create(keys, Rotation(1 << 30, 90))
    first = keyring.active_key_id
    sealed(keyring)
    sealed(keyring)
    keyring.close()
    made = 1_700_000_000.0  # before the second key's creation, whatever the machine's date
    os.utime(keys / f"{first}.key", (made, made))
    assert main(["keys", "rotate", "--config", str(config)]) == 0
    second = Keyring.load(keys).active_key_id
    assert f"field key {second} is now active, replacing {first}" in capsys.readouterr().out

    assert main(["keys", "list", "--config", str(config)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == f"field {first}  created 2023-11-14T22:13:20Z  uses 2  retired"
    assert listed[1].startswith(f"field {second}  created ")
    assert listed[1].endswith("  uses 0  active")
    assert [key.key_id for key in field_keys(keys)] == [first, second]
