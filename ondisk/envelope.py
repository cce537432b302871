"""The envelope an event's `sensitive` value is encrypted into, and opening it.

An envelope is a string, so it fits every destination's schema (JSON, SQL text, Parquet string):

    aesgcm1:<key id>:<base64url without padding of (12-byte nonce + ciphertext + 16-byte tag)>

The plaintext is the value encoded as msgpack, so an int stays an int and a map stays a map. The
associated data is `event_id + "\\0" + field name`: an envelope copied into another event or another
field fails authentication instead of decrypting to a plausible but false record.

The intake encrypts (agents/crypto/fields.py); the file sink's plaintext opt-out and
`audit-query cat --decrypt` open envelopes with `open_sensitive`. A string a service sends that already
has the exact envelope shape is taken to be one (and fails loudly on decryption if it is not).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from auditship.ondisk.errors import DecryptionError, KeyringError, SubjectErasedError
from auditship.ondisk.keys import FieldKeys
from auditship.ondisk.subject_keys import ERASED_VALUE

PREFIX = "aesgcm1:"
NONCE_BYTES = 12
# A nonce, a tag and at least one byte of msgpack: 29 bytes, 39 base64 characters.
# The key id: a field key's (f-), or a data subject's (ds-, ondisk/subject_keys.py).
_ENVELOPE = re.compile(r"aesgcm1:(f-[0-9a-f]{8}|ds-[0-9a-f]{32}):([A-Za-z0-9_-]{39,})")

_decoder = msgspec.msgpack.Decoder()


def is_envelope(value: object) -> bool:
    return isinstance(value, str) and _ENVELOPE.fullmatch(value) is not None


def associated_data(event_id: str, name: str) -> bytes:
    return f"{event_id}\0{name}".encode()


def open_sensitive(event_id: str, sensitive: Mapping[str, Any], keys: FieldKeys) -> dict[str, Any] | None:
    """The `sensitive` values of event `event_id` with each envelope replaced by its value, other values
    as they are; None when there is no envelope.

    An envelope under a data subject's key that `audit-agent subject forget` destroyed opens to
    ERASED_VALUE. Raises DecryptionError naming the event, the field and the key id when a key is
    missing otherwise or an envelope fails authentication.
    """
    opened: dict[str, Any] = {}
    changed = False
    for name, value in sensitive.items():
        match = _ENVELOPE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            opened[name] = value
            continue
        opened[name] = _open(event_id, name, match[1], match[2], keys)
        changed = True
    return opened if changed else None


def _open(event_id: str, name: str, key_id: str, token: str, keys: FieldKeys) -> Any:
    from cryptography.exceptions import InvalidTag  # here, not at the top: ondisk stays light at import

    where = f"event {event_id}: sensitive field {name!r} (key {key_id})"
    try:
        cipher = keys.cipher(key_id)
    except SubjectErasedError:
        return ERASED_VALUE  # destroyed on purpose (subject forget): the reader is told, not failed
    except KeyringError as exc:
        raise DecryptionError(f"{where}: no such key: {exc}") from exc
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise DecryptionError(f"{where}: malformed envelope: {exc}") from exc
    try:
        plaintext = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data(event_id, name))
    except InvalidTag as exc:
        raise DecryptionError(
            f"{where}: authentication failed: the envelope was altered, or moved here from another "
            "event or field"
        ) from exc
    try:
        return _decoder.decode(plaintext)
    except msgspec.DecodeError as exc:  # authentic yet not msgpack: written by something else
        raise DecryptionError(f"{where}: decrypted value is not msgpack: {exc}") from exc
