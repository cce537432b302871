"""Sealing records for the agent, inside the service process: spool records, and frames sent over TCP.

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

Over TCP the same holds for the network and for the agent's host: an emitter seals each frame with
sensitive values to the agent's CURVE server key before it leaves the process (shipper.emitter), and
the intake opens it with the CURVE secret key (agents/intake/intake.py). A Curve25519 key is an X25519
key; the two uses derive their keys differently (CurveZMQ's box, this HKDF), so neither learns from
the other.

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


MAX_SEALS = 1 << 20
"""Records sealed under one ephemeral key (so one AES key) at most: far below the 2^32 that random
96-bit nonces allow one key."""


class Sealer:
    """Seals records to one public key, many under each ephemeral key: a record then costs one AES-GCM
    encryption instead of a key agreement and a key derivation. Each record has seal()'s layout (it
    names its ephemeral key), so the agent opens them alike, deriving each ephemeral key's AES key once.
    The ephemeral private key lives only in this object, in the process that holds the plaintext."""

    def __init__(self, public_key: bytes) -> None:
        if len(public_key) != KEY_BYTES:
            raise ValueError(f"agent public key: expected {KEY_BYTES} raw bytes, got {len(public_key)}")
        if not sealing_available():
            raise SealUnavailableError("sealing needs 'cryptography', which does not import here")
        self.public_key = public_key
        self._left = 0

    def seal(self, payload: bytes) -> bytes:
        """Encrypt `payload` so that only the holder of the private key for `public_key` can read it."""
        if self._left <= 0:
            self._new_ephemeral_key()
        self._left -= 1
        nonce = os.urandom(NONCE_BYTES)
        return self._header + nonce + self._aead.encrypt(nonce, payload, self._header)

    def _new_ephemeral_key(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        ephemeral = X25519PrivateKey.generate()
        ephemeral_public = ephemeral.public_key().public_bytes_raw()
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(self.public_key))
        self._header = bytes([VERSION]) + ephemeral_public
        self._aead = AESGCM(derive_key(shared, ephemeral_public, self.public_key))
        self._left = MAX_SEALS


def seal(payload: bytes, public_key: bytes) -> bytes:
    """Seal one record under an ephemeral key of its own (see Sealer)."""
    return Sealer(public_key).seal(payload)


def derive_key(shared_secret: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    """The AES-256 key of one seal; shared with the agent's `unseal` so both sides derive it alike."""
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(algorithm=SHA256(), length=32, salt=None, info=_INFO + ephemeral_public + recipient_public)
    return hkdf.derive(shared_secret)
