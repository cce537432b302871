"""Opening records that emitters sealed to one of the agent's X25519 keys.

The other half of shipper/spool_seal.py, whose docstring says why records are sealed and how. This side
holds the private keys: the spool key (keys/spool-x25519.key) for spool records, the CURVE server key
for frames sent over TCP. So it lives in the agent, never in a service.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from auditship.agents.crypto.keyring import Keyring
from auditship.ondisk.errors import DecryptionError
from shipper.spool_seal import HEADER_BYTES, KEY_BYTES, TAG_BYTES, VERSION, derive_key

MAX_CACHED_KEYS = 4096
"""AES keys remembered per ephemeral key: an emitter seals many records under one (spool_seal.Sealer)."""


class Unsealer:
    """Opens records sealed to `private`'s public key, deriving each ephemeral key's AES key once."""

    def __init__(self, private: X25519PrivateKey) -> None:
        self._private = private
        self._public = private.public_key().public_bytes_raw()
        self._keys: dict[bytes, AESGCM] = {}

    def unseal(self, blob: bytes, *, source: str = "sealed record") -> bytes:
        """The payload `shipper.spool_seal` sealed to this key.

        Raises DecryptionError, prefixed with `source` (say, the spool file and offset), when the record
        is truncated, of an unknown version, or fails authentication (altered, or sealed to another key).
        """
        if len(blob) < HEADER_BYTES + TAG_BYTES:
            raise DecryptionError(f"{source}: {len(blob)} bytes is too short for a sealed record")
        if blob[0] != VERSION:
            raise DecryptionError(f"{source}: unknown seal version {blob[0]} (this agent reads {VERSION})")
        header = blob[: 1 + KEY_BYTES]
        nonce = blob[1 + KEY_BYTES : HEADER_BYTES]
        try:
            return self._aead(header[1:], source).decrypt(nonce, blob[HEADER_BYTES:], header)
        except InvalidTag as exc:
            raise DecryptionError(
                f"{source}: authentication failed: the record was altered, or sealed to another agent's key"
            ) from exc

    def _aead(self, ephemeral_public: bytes, source: str) -> AESGCM:
        aead = self._keys.get(ephemeral_public)
        if aead is None:
            try:
                shared = self._private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
            except ValueError as exc:  # a low-order point: not something a Sealer produces
                raise DecryptionError(f"{source}: invalid ephemeral key: {exc}") from exc
            if len(self._keys) >= MAX_CACHED_KEYS:
                self._keys.clear()
            aead = self._keys[ephemeral_public] = AESGCM(derive_key(shared, ephemeral_public, self._public))
        return aead


def unseal(blob: bytes, keyring: Keyring, *, source: str = "sealed record") -> bytes:
    """A record sealed to `keyring`'s spool key (see Unsealer.unseal)."""
    return Unsealer(keyring.spool_private_key()).unseal(blob, source=source)
