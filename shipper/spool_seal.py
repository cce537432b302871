"""Sealing spool records for the agent, inside the service process.

Why this exists: when the agent is down or slow, an emitter spills events to a local spool file
(DESIGN, guarantee 3). Field encryption is the agent's job because the agent holds the keys; services
must not hold them, or any compromised service could read every sensitive value ever logged. Yet an
event with `sensitive` values must not reach disk in plaintext, spool files included. So the emitter
seals such a record to the agent's public spool key (`Keyring.spool_public_key()`): it can seal, but
only the agent, holding the private key in keys/, can unseal (agents/crypto/spool_unseal.py).

The construction is the usual ECIES one, from `cryptography`'s primitives only: an ephemeral X25519
key agreement with the agent's key, HKDF-SHA256 over the shared secret (bound to both public keys),
AES-256-GCM under the derived key. Layout:

    version (1 byte, 1) | ephemeral public key (32) | nonce (12) | ciphertext + tag (16)

The first 33 bytes are the associated data, so neither the version nor the key can be swapped.

`cryptography` is a dependency of the plain install, imported on first use so that a service that
never spills never loads it. `sealing_available()` still tells whether it imports (a broken or
trimmed environment): when it does not, the emitter keeps such events in memory rather than spill
sensitive values in plaintext.
"""

from __future__ import annotations

import functools
import importlib
import os

VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = 1 + KEY_BYTES + NONCE_BYTES
_INFO = b"auditship spool seal v1"


class SealUnavailableError(RuntimeError):
    """`seal()` was called where `cryptography` is not installed."""


@functools.cache
def sealing_available() -> bool:
    """Whether this process can seal (whether `cryptography` imports)."""
    try:
        importlib.import_module("cryptography.hazmat.primitives.ciphers.aead")
    except ImportError:
        return False
    return True


def seal(payload: bytes, public_key: bytes) -> bytes:
    """Encrypt `payload` so that only the holder of the X25519 private key for `public_key` can read it."""
    if len(public_key) != KEY_BYTES:
        raise ValueError(f"spool public key: expected {KEY_BYTES} raw bytes, got {len(public_key)}")
    if not sealing_available():
        raise SealUnavailableError("sealing a spool record needs 'cryptography' (auditship[agent])")
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(public_key))
    nonce = os.urandom(NONCE_BYTES)
    header = bytes([VERSION]) + ephemeral_public
    key = derive_key(shared, ephemeral_public, public_key)
    return header + nonce + AESGCM(key).encrypt(nonce, payload, header)


def derive_key(shared_secret: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    """The AES-256 key of one seal; shared with the agent's `unseal` so both sides derive it alike."""
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(algorithm=SHA256(), length=32, salt=None, info=_INFO + ephemeral_public + recipient_public)
    return hkdf.derive(shared_secret)
