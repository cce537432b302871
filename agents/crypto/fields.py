"""Encryption of an event's `sensitive` values into envelopes, and back.

An envelope is a string, so it fits every destination's schema (JSON, SQL text, Parquet string):

    aesgcm1:<key id>:<base64url without padding of (12-byte nonce + ciphertext + 16-byte tag)>

The plaintext is the value encoded as msgpack, so an int stays an int and a map stays a map. The
associated data is `event_id + "\\0" + field name`: an envelope copied into another event or another
field fails authentication instead of decrypting to a plausible but false record.

The intake encrypts once, before the WAL; sinks may call `encrypt_sensitive` again as a guard, which
leaves envelopes as they are. A string a service sends that already has the exact envelope shape is
therefore taken to be one (and fails loudly on decryption if it is not).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag

from auditship.agents.crypto.errors import DecryptionError, KeyringError
from auditship.agents.crypto.keyring import Keyring
from shipper.event import AuditEvent

PREFIX = "aesgcm1:"
NONCE_BYTES = 12
# A nonce, a tag and at least one byte of msgpack: 29 bytes, 39 base64 characters.
_ENVELOPE = re.compile(r"aesgcm1:(f-[0-9a-f]{8}):([A-Za-z0-9_-]{39,})")

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def is_envelope(value: object) -> bool:
    return isinstance(value, str) and _ENVELOPE.fullmatch(value) is not None


def encrypt_sensitive(event: AuditEvent, keyring: Keyring) -> AuditEvent:
    """`event` with each plaintext `sensitive` value replaced by an envelope under the active key.

    Returns the same object when there is nothing to encrypt (no sensitive values, or all envelopes).
    """
    if not event.sensitive:
        return event
    key_id = keyring.active_key_id
    sealed: dict[str, Any] = {}
    changed = False
    for name, value in event.sensitive.items():
        if is_envelope(value):
            sealed[name] = value
            continue
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = keyring.cipher(key_id).encrypt(nonce, _encoder.encode(value), _aad(event, name))
        sealed[name] = f"{PREFIX}{key_id}:{_b64encode(nonce + ciphertext)}"
        changed = True
    return msgspec.structs.replace(event, sensitive=sealed) if changed else event


def decrypt_sensitive(event: AuditEvent, keyring: Keyring) -> AuditEvent:
    """`event` with each envelope in `sensitive` replaced by its value; other values stay as they are.

    Raises DecryptionError naming the event, the field and the key id when a key is missing or an
    envelope fails authentication. Returns the same object when there is no envelope.
    """
    if not event.sensitive:
        return event
    opened: dict[str, Any] = {}
    changed = False
    for name, value in event.sensitive.items():
        match = _ENVELOPE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            opened[name] = value
            continue
        opened[name] = _open(event, name, match[1], match[2], keyring)
        changed = True
    return msgspec.structs.replace(event, sensitive=opened) if changed else event


def _open(event: AuditEvent, name: str, key_id: str, token: str, keyring: Keyring) -> Any:
    where = f"event {event.event_id}: sensitive field {name!r} (key {key_id})"
    try:
        cipher = keyring.cipher(key_id)
    except KeyringError as exc:
        raise DecryptionError(f"{where}: no such key: {exc}") from exc
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise DecryptionError(f"{where}: malformed envelope: {exc}") from exc
    try:
        plaintext = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(event, name))
    except InvalidTag as exc:
        raise DecryptionError(
            f"{where}: authentication failed: the envelope was altered, or moved here from another "
            "event or field"
        ) from exc
    try:
        return _decoder.decode(plaintext)
    except msgspec.DecodeError as exc:  # authentic yet not msgpack: written by something else
        raise DecryptionError(f"{where}: decrypted value is not msgpack: {exc}") from exc


def _aad(event: AuditEvent, name: str) -> bytes:
    return f"{event.event_id}\0{name}".encode()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
