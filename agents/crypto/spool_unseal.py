"""Opening spool records that emitters sealed to the agent's spool key.

The other half of shipper/spool_seal.py, whose docstring says why spool records are sealed and how. This
side holds the X25519 private key (keys/spool-x25519.key), so it lives in the agent, never in a service.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from auditship.agents.crypto.keyring import Keyring
from auditship.ondisk.errors import DecryptionError
from shipper.spool_seal import HEADER_BYTES, KEY_BYTES, TAG_BYTES, VERSION, derive_key


def unseal(blob: bytes, keyring: Keyring, *, source: str = "sealed record") -> bytes:
    """The payload `shipper.spool_seal.seal` sealed to this keyring's spool key.

    Raises DecryptionError, prefixed with `source` (say, the spool file and offset), when the record is
    truncated, of an unknown version, or fails authentication (altered, or sealed to another key).
    """
    if len(blob) < HEADER_BYTES + TAG_BYTES:
        raise DecryptionError(f"{source}: {len(blob)} bytes is too short for a sealed record")
    if blob[0] != VERSION:
        raise DecryptionError(f"{source}: unknown seal version {blob[0]} (this agent reads {VERSION})")
    header = blob[: 1 + KEY_BYTES]
    ephemeral_public = header[1:]
    nonce = blob[1 + KEY_BYTES : HEADER_BYTES]
    private = keyring.spool_private_key()
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    except ValueError as exc:  # a low-order point: not something seal() produces
        raise DecryptionError(f"{source}: invalid ephemeral key: {exc}") from exc
    key = derive_key(shared, ephemeral_public, keyring.spool_public_key())
    try:
        return AESGCM(key).decrypt(nonce, blob[HEADER_BYTES:], header)
    except InvalidTag as exc:
        raise DecryptionError(
            f"{source}: authentication failed: the record was altered, or sealed to another agent's key"
        ) from exc
