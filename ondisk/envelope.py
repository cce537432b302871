"""The envelope an event's `sensitive` value is encrypted into, and opening it.

An envelope is a string, so it fits every destination's schema (JSON, SQL text, Parquet string):

    aesgcm2:<key id>:<base64url without padding of (12-byte nonce + ciphertext + 16-byte tag)>[:<blind>]
    aesgcm1:<key id>:<base64url ...>                         (older agents; still opened)

The plaintext is the value encoded as msgpack, so an int stays an int and a map stays a map. `<blind>`
is the value's blind index (ondisk/blind.py: 32 hex digits of a keyed HMAC), present for the fields
`[encryption] blind_index` names: carried inside the envelope, every store keeps it where the envelope
is, and search finds it there without decrypting anything.

The associated data of `aesgcm2` binds the field name, the blind index and the event's own hash
(ondisk/event_hash.py: every field but the sensitive values, and the sensitive field names): an envelope
copied into another event or field, a blind index swapped, or any edit of the event (its user, time,
details...) fails authentication instead of decrypting to a plausible but false record. `aesgcm1`
bound only `event_id + "\\0" + field name`.

The intake encrypts (agents/crypto/fields.py); the file sink's plaintext opt-out and
`audit-query cat --decrypt` open envelopes with `open_sensitive`. A string a service sends that already
has the exact envelope shape is taken to be one (and fails loudly on decryption if it is not).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from auditship.ondisk.errors import DecryptionError, KeyringError, SubjectErasedError
from auditship.ondisk.event_hash import event_hash
from auditship.ondisk.keys import FieldKeys
from auditship.ondisk.subject_keys import ERASED_VALUE

PREFIX = "aesgcm2:"
NONCE_BYTES = 12
# A nonce, a tag and at least one byte of msgpack: 29 bytes, 39 base64 characters.
# The key id: a field key's (f-), or a data subject's (ds-, ondisk/subject_keys.py).
ENVELOPE_PATTERN = (
    r"aesgcm1:(?P<key1>f-[0-9a-f]{8}|ds-[0-9a-f]{32}):(?P<token1>[A-Za-z0-9_-]{39,})"
    r"|aesgcm2:(?P<key>f-[0-9a-f]{8}|ds-[0-9a-f]{32}):(?P<token>[A-Za-z0-9_-]{39,})"
    r"(?::(?P<blind>[0-9a-f]{32}))?"
)
"""What a whole envelope matches (Python's re and DuckDB's RE2 alike)."""
_ENVELOPE = re.compile(ENVELOPE_PATTERN)

_decoder = msgspec.msgpack.Decoder()


class SealedEvent(Protocol):
    """What opening an event's envelopes reads of it (shipper.event.AuditEvent is one)."""

    @property
    def event_id(self) -> str: ...
    @property
    def sensitive(self) -> Mapping[str, Any]: ...


def is_envelope(value: object) -> bool:
    return isinstance(value, str) and _ENVELOPE.fullmatch(value) is not None


def associated_data(name: str, blind: str | None, digest: bytes) -> bytes:
    """An `aesgcm2` envelope's associated data: field `name`, its blind index (or none) and the event's
    hash (`event_hash`)."""
    return b"aesgcm2\0" + name.encode() + b"\0" + (blind or "").encode() + b"\0" + digest


def associated_data_v1(event_id: str, name: str) -> bytes:
    return f"{event_id}\0{name}".encode()


def blind_of(value: object) -> str | None:
    """The blind index an envelope carries; None when it carries none or is no envelope."""
    match = _ENVELOPE.fullmatch(value) if isinstance(value, str) else None
    return None if match is None else match["blind"]


def not_envelopes(sensitive: Mapping[str, Any]) -> list[str]:
    """The names of the `sensitive` fields whose value is not an envelope: stored in clear (the file
    sink's `encrypt_sensitive = false` writes them so; anywhere else, something other than the agent)."""
    return [name for name, value in sensitive.items() if not is_envelope(value)]


def open_sensitive(event: SealedEvent, keys: FieldKeys) -> dict[str, Any] | None:
    """The `sensitive` values of `event` with each envelope replaced by its value, other
    values as they are; None when there is no envelope.

    An envelope under a data subject's key that `audit-agent subject forget` destroyed opens to
    ERASED_VALUE. Raises DecryptionError naming the event, the field and the key id when a key is
    missing otherwise or an envelope fails authentication (altered, moved, or the event around it
    edited).
    """
    opened: dict[str, Any] = {}
    changed = False
    digest: bytes | None = None
    for name, value in event.sensitive.items():
        match = _ENVELOPE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            opened[name] = value
            continue
        if match["key1"] is not None:
            aad = associated_data_v1(event.event_id, name)
            key_id, token = match["key1"], match["token1"]
        else:
            digest = digest if digest is not None else event_hash(event)
            aad = associated_data(name, match["blind"], digest)
            key_id, token = match["key"], match["token"]
        where = f"event {event.event_id}: sensitive field {name!r} (key {key_id})"
        opened[name] = _open(where, key_id, token, aad, keys)
        changed = True
    return opened if changed else None


def _open(where: str, key_id: str, token: str, aad: bytes, keys: FieldKeys) -> Any:
    from cryptography.exceptions import InvalidTag  # here, not at the top: ondisk stays light at import

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
        plaintext = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise DecryptionError(
            f"{where}: authentication failed: the envelope or the event around it was altered, or the "
            "envelope was moved here from another event or field"
        ) from exc
    try:
        return _decoder.decode(plaintext)
    except msgspec.DecodeError as exc:  # authentic yet not msgpack: written by something else
        raise DecryptionError(f"{where}: decrypted value is not msgpack: {exc}") from exc
