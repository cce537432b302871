"""Per-subject field keys, for erasure by crypto-shredding: the files, the key ids, and opening them as
every reader does (ondisk/keys.py's FieldKeys hands a `ds-` key id here). The agent's intake makes them
(agents/subjects/keyring.py); `audit-agent subject forget` destroys them (agents/subjects/forget.py).

    <keys_dir>/subjects/          0700
      master.key                  0600, 32 random bytes: derives the name key and the wrapping key
      ds-<32 hex>.key             0600, 60 bytes: one subject key, wrapped (12-byte nonce + AES-256-GCM
                                  of the key under the wrapping key, its key id as associated data)
      erased/ds-<32 hex>          empty: the tombstone of a destroyed subject key

A subject key's id is `ds-` (data subject) and 128 bits of HMAC-SHA256(name key, generation NUL
subject): without the master key, neither the file names nor the envelopes that name the key say whose
it is. Generation 0 is a
subject's first key; once it is destroyed, the intake seals that subject's new values under generation 1,
and so on (its tombstone says to go on to the next).

An envelope whose key was destroyed opens to ERASED_VALUE: the key is gone on purpose, which a reader
is told instead of failing. A key file missing without its tombstone is an error (a damaged keys_dir).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from auditship.ondisk.errors import KeyringError, SubjectErasedError
from auditship.ondisk.secret_files import read_secret

if TYPE_CHECKING:  # cryptography is imported where a cipher is made: ondisk stays light at import
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SUBJECTS = "subjects"
MASTER = "master.key"
ERASED = "erased"
SUBJECT_KEY_ID = re.compile(r"ds-[0-9a-f]{32}")
KEY_BYTES = 32
NONCE_BYTES = 12
WRAPPED_BYTES = NONCE_BYTES + KEY_BYTES + 16
ERASED_VALUE = "[erased subject]"
"""What an envelope sealed under a destroyed subject key opens to."""
MAX_SUBJECT_CHARS = 1024
"""A subject (a user id, a patient id) longer than this is not taken for one: the intake seals its
values under the field key, and the commands refuse it."""
MAX_GENERATIONS = 1000
"""Keys one subject may have had (each `forget` ends one): a bound on the files looked at for it."""
CACHED_CIPHERS = 16_384
"""Subject ciphers a process keeps (the most recently used), whatever the count of subjects: a few MB.
A subject outside them costs a key file read and unwrap (tens of microseconds) at its next value."""


def check_subject(subject: str) -> str:
    """`subject` if it can be a data subject; ValueError saying why not (empty, too long, not text)."""
    if not subject:
        raise ValueError("a subject is a non-empty string")
    if len(subject) > MAX_SUBJECT_CHARS:
        raise ValueError(f"a subject is at most {MAX_SUBJECT_CHARS} characters, got {len(subject)}")
    try:
        subject.encode()
    except UnicodeEncodeError as exc:  # bytes of a command line that are not UTF-8
        raise ValueError(f"a subject is UTF-8 text: {exc.reason} at character {exc.start}") from None
    return subject


class SubjectFiles:
    """Where the subject keys of `keys_dir` are."""

    def __init__(self, keys_dir: Path) -> None:
        self.directory = keys_dir / SUBJECTS
        self.master = self.directory / MASTER
        self.erased = self.directory / ERASED

    def key(self, key_id: str) -> Path:
        return self.directory / f"{key_id}.key"

    def tombstone(self, key_id: str) -> Path:
        return self.erased / key_id


class MasterKey:
    """What the master key derives: the keyed hash that names subject keys, and the wrapping cipher."""

    def __init__(self, master: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._name_key = hmac.digest(master, b"auditship subject key names", hashlib.sha256)
        self._wrapping = AESGCM(hmac.digest(master, b"auditship subject key wrapping", hashlib.sha256))

    def key_id(self, subject: str, generation: int) -> str:
        message = f"{generation}\0{subject}".encode()
        return "ds-" + hmac.digest(self._name_key, message, hashlib.sha256)[:16].hex()

    def wrap(self, key_id: str, key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._wrapping.encrypt(nonce, key, key_id.encode())

    def unwrap(self, key_id: str, wrapped: bytes, path: Path) -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            return self._wrapping.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], key_id.encode())
        except InvalidTag as exc:
            raise KeyringError(
                f"{path}: does not open under the master key (altered, or another key's file)"
            ) from exc


class SubjectCiphers:
    """The subject keys of one keys_dir by id, the CACHED_CIPHERS most recently used kept open."""

    def __init__(self, keys_dir: Path) -> None:
        self.files = SubjectFiles(keys_dir)
        self._master: MasterKey | None = None
        self._ciphers: OrderedDict[str, AESGCM] = OrderedDict()

    def master(self) -> MasterKey:
        if self._master is None:
            self._master = MasterKey(read_secret(self.files.master, KEY_BYTES))
        return self._master

    def cipher(self, key_id: str) -> AESGCM:
        """The cipher of subject key `key_id`; SubjectErasedError when it was destroyed, KeyringError when
        it is missing otherwise or does not open."""
        cipher = self._ciphers.get(key_id)
        if cipher is not None:
            self._ciphers.move_to_end(key_id)
            return cipher
        return self.remember(key_id, self.read(key_id))

    def read(self, key_id: str) -> bytes:
        """The raw key `key_id` (its id checked: it comes from data and names a file)."""
        if not SUBJECT_KEY_ID.fullmatch(key_id):
            raise KeyringError(f"{self.files.directory}: {key_id!r} is not a subject key id")
        path = self.files.key(key_id)
        try:
            wrapped = read_secret(path, WRAPPED_BYTES)
        except KeyringError as exc:
            if self.files.tombstone(key_id).exists():
                raise SubjectErasedError(
                    f"subject key {key_id} was destroyed (audit-agent subject forget)"
                ) from exc
            raise
        return self.master().unwrap(key_id, wrapped, path)

    def remember(self, key_id: str, key: bytes) -> AESGCM:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        cipher = self._ciphers[key_id] = AESGCM(key)
        if len(self._ciphers) > CACHED_CIPHERS:
            self._ciphers.popitem(last=False)
        return cipher

    def drop(self) -> None:
        """Forget every open cipher: keys may have been destroyed since they were read."""
        self._ciphers.clear()
