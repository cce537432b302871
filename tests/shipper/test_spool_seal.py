"""seal() works in a service process: lazily imported crypto, a versioned layout, no plaintext out."""

import subprocess
import sys
from pathlib import Path

import pytest

from shipper import spool_seal as seal_module
from shipper.spool_seal import HEADER_BYTES, TAG_BYTES, SealUnavailableError, seal, sealing_available

PUBLIC_KEY = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
PAYLOAD = b"ssn=123-45-6789"
ROOT = Path(__file__).resolve().parents[2]


def test_the_layout_is_version_key_nonce_then_ciphertext():
    """A sealed record is 1 version byte + 32-byte ephemeral key + 12-byte nonce + ciphertext + tag."""
    blob = seal(PAYLOAD, PUBLIC_KEY)
    assert blob[0] == 1
    assert len(blob) == HEADER_BYTES + len(PAYLOAD) + TAG_BYTES
    assert PAYLOAD not in blob
    assert b"123-45-6789" not in blob


def test_every_seal_uses_a_fresh_ephemeral_key():
    """Sealing the same payload twice gives unrelated records."""
    one, two = seal(PAYLOAD, PUBLIC_KEY), seal(PAYLOAD, PUBLIC_KEY)
    assert one[1:33] != two[1:33]
    assert one != two


def test_a_public_key_of_the_wrong_size_is_refused():
    """The key must be the raw 32 bytes; anything else is a ValueError that says so."""
    with pytest.raises(ValueError, match="expected 32 raw bytes, got 31"):
        seal(PAYLOAD, PUBLIC_KEY[:31])


def test_sealing_without_cryptography_says_what_is_missing(monkeypatch):
    """Where cryptography cannot be imported, seal() raises SealUnavailableError naming the package."""
    monkeypatch.setattr(seal_module, "sealing_available", lambda: False)
    with pytest.raises(SealUnavailableError, match="cryptography"):
        seal(PAYLOAD, PUBLIC_KEY)


def test_the_module_imports_in_a_service_without_cryptography():
    """Importing shipper.spool_seal does not import cryptography; sealing_available() then reports False."""
    code = (
        "import sys; sys.modules['cryptography'] = None\n"
        "import shipper.spool_seal as s\n"
        "print(s.sealing_available())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"
    assert sealing_available() is True
