"""Spool records sealed by an emitter open only with the agent's keyring, and only unaltered."""

import pytest

from auditship.agents.crypto import Keyring, unseal
from auditship.ondisk.errors import DecryptionError
from shipper.spool_seal import HEADER_BYTES, seal

PAYLOAD = b'{"sensitive":{"ssn":"123-45-6789"}}'


@pytest.fixture
def keyring(tmp_path):
    return Keyring.load_or_create(tmp_path / "keys")


def test_a_sealed_record_opens_with_the_agent_keyring(keyring):
    """seal() with the public key, unseal() with the keyring: the payload comes back."""
    assert unseal(seal(PAYLOAD, keyring.spool_public_key()), keyring) == PAYLOAD


def test_a_sealed_record_opens_after_the_keyring_is_loaded_again(keyring):
    """The spool key pair is stored, so a restarted agent opens what was sealed before."""
    blob = seal(PAYLOAD, keyring.spool_public_key())
    assert unseal(blob, Keyring.load_or_create(keyring.keys_dir)) == PAYLOAD


@pytest.mark.parametrize("position", [0, 1, 20, HEADER_BYTES - 1, HEADER_BYTES, -1])
def test_any_altered_byte_is_refused(keyring, position):
    """Altering the version, ephemeral key, nonce, ciphertext or tag fails, naming the source."""
    blob = bytearray(seal(PAYLOAD, keyring.spool_public_key()))
    blob[position] ^= 0x01
    with pytest.raises(DecryptionError, match=r"^spool/x\.spool@40: "):
        unseal(bytes(blob), keyring, source="spool/x.spool@40")


def test_a_record_sealed_to_another_agent_is_refused(keyring, tmp_path):
    """Only the holder of the matching private key can open a record."""
    other = Keyring.load_or_create(tmp_path / "other")
    with pytest.raises(DecryptionError, match="sealed to another agent's key"):
        unseal(seal(PAYLOAD, other.spool_public_key()), keyring)


def test_a_truncated_record_is_refused(keyring):
    """A record cut shorter than header + tag is reported as too short."""
    with pytest.raises(DecryptionError, match="too short"):
        unseal(seal(PAYLOAD, keyring.spool_public_key())[:40], keyring)
