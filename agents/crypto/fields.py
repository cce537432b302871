"""Encryption of an event's `sensitive` values into envelopes (ondisk/envelope.py), and back.

The intake encrypts once, before the WAL; sinks may call `encrypt_sensitive` again as a guard, which
leaves envelopes as they are.
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from auditship.ondisk.envelope import NONCE_BYTES, PREFIX, associated_data, is_envelope, open_sensitive
from auditship.ondisk.keys import FieldKeys
from shipper.event import AuditEvent

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_encoder = msgspec.msgpack.Encoder()


class EncryptionKeys(Protocol):
    """What seals values: a Keyring (the active field key), or a data subject's key
    (agents/subjects/keyring.py)."""

    def encryption_key(self, values: int) -> tuple[str, AESGCM]: ...


def encrypt_sensitive(event: AuditEvent, keyring: EncryptionKeys) -> AuditEvent:
    """`event` with each plaintext `sensitive` value replaced by an envelope under the active key
    (counted against it, and rotated first when due, by the intake's keyring), or a subject's key.

    Returns the same object when there is nothing to encrypt (no sensitive values, or all envelopes).
    """
    if not event.sensitive:
        return event
    plain = [name for name, value in event.sensitive.items() if not is_envelope(value)]
    if not plain:
        return event
    key_id, cipher = keyring.encryption_key(len(plain))
    sealed: dict[str, Any] = dict(event.sensitive)
    for name in plain:
        nonce = os.urandom(NONCE_BYTES)
        aad = associated_data(event.event_id, name)
        ciphertext = cipher.encrypt(nonce, _encoder.encode(sealed[name]), aad)
        sealed[name] = f"{PREFIX}{key_id}:{_b64encode(nonce + ciphertext)}"
    return msgspec.structs.replace(event, sensitive=sealed)


def decrypt_sensitive(event: AuditEvent, keyring: FieldKeys) -> AuditEvent:
    """`event` with each envelope in `sensitive` replaced by its value (ondisk.envelope.open_sensitive,
    whose DecryptionError it raises); the same object when there is no envelope."""
    if not event.sensitive:
        return event
    opened = open_sensitive(event.event_id, event.sensitive, keyring)
    return event if opened is None else msgspec.structs.replace(event, sensitive=opened)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
