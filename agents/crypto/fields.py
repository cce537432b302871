"""Encryption of an event's `sensitive` values into envelopes (ondisk/envelope.py), and back.

The intake encrypts once, before the WAL, after it has stamped the event's sender: each envelope binds
the event's hash (ondisk/event_hash.py) as the event is stored, so any later edit of the event breaks
its decryption. Sinks may call `encrypt_sensitive` again as a guard, which leaves envelopes as they are.
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from auditship.agents.crypto.blinding import Blinding
from auditship.ondisk.envelope import NONCE_BYTES, PREFIX, associated_data, is_envelope, open_sensitive
from auditship.ondisk.event_hash import event_hash
from auditship.ondisk.keys import FieldKeys
from shipper.event import AuditEvent

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_encoder = msgspec.msgpack.Encoder()


class EncryptionKeys(Protocol):
    """What seals values: a Keyring (the active field key), or a data subject's key
    (agents/subjects/keyring.py)."""

    def encryption_key(self, values: int) -> tuple[str, AESGCM]: ...


def encrypt_sensitive(
    event: AuditEvent, keyring: EncryptionKeys, blinding: Blinding | None = None
) -> AuditEvent:
    """`event` with each plaintext `sensitive` value replaced by an envelope under the active key
    (counted against it, and rotated first when due, by the intake's keyring), or a subject's key,
    carrying its blind index when `blinding` names the field.

    Returns the same object when there is nothing to encrypt (no sensitive values, or all envelopes).
    """
    if not event.sensitive:
        return event
    plain = [name for name, value in event.sensitive.items() if not is_envelope(value)]
    if not plain:
        return event
    # Sealing changes the values only, which the hash leaves out: it is the stored event's.
    digest = event_hash(event)
    key_id, cipher = keyring.encryption_key(len(plain))
    sealed: dict[str, Any] = dict(event.sensitive)
    for name in plain:
        value = sealed[name]
        blind = blinding.token(name, value) if blinding is not None else None
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = cipher.encrypt(nonce, _encoder.encode(value), associated_data(name, blind, digest))
        envelope = f"{PREFIX}{key_id}:{_b64encode(nonce + ciphertext)}"
        sealed[name] = envelope if blind is None else f"{envelope}:{blind}"
    return msgspec.structs.replace(event, sensitive=sealed)


def decrypt_sensitive(event: AuditEvent, keyring: FieldKeys) -> AuditEvent:
    """`event` with each envelope in `sensitive` replaced by its value (ondisk.envelope.open_sensitive,
    whose DecryptionError it raises); the same object when there is no envelope."""
    if not event.sensitive:
        return event
    opened = open_sensitive(event, keyring)
    return event if opened is None else msgspec.structs.replace(event, sensitive=opened)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
