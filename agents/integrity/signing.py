"""The signing key of digests: Ed25519, made once in keys_dir, its public key kept beside it, rotated by
`audit-agent keys rotate --signing`.

    signing-ed25519.key     0600, 32 raw bytes: the private key that signs now (never leaves keys_dir)
    signing-<key id>.pub    the public key of every key that ever signed, PEM: what `audit-agent keys
                            export-public` gives an auditor (all of them, one bundle), and what
                            `audit-query verify` trusts when no --public-key is given

The supervisor makes the key at the agent's first start (`load_or_create`, before any worker runs);
workers and `audit-query retention` only load it. The files are published as the keyring's are
(written privately, then linked into place), so two processes never make two keys.

Rotation publishes the new key's public file, then replaces the private key file (written privately,
renamed into place), so the old private key is gone: nothing can sign as it any more, while its public
key goes on verifying the digests it signed. Each digest names its key, so a chain crosses a rotation.
A running sink looks at the key file (one stat) before each digest and takes up a new key. The
supervisor also rotates by age (`keys.signing_rotate_after_days`), looking once an hour.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from auditship.agents.crypto.key_files import Stamp, file_stamp, publish, replace_file
from auditship.ondisk.digests import (
    KEY_ID,
    SIGNING_KEY,
    DigestError,
    StoredDigest,
    key_id_of,
    load_public_key,
    public_key_path,
    public_keys_in,
)
from auditship.ondisk.errors import KeyringError
from auditship.ondisk.files import make_private_dirs
from auditship.ondisk.keys import read_key

logger = logging.getLogger("auditship.integrity")


class Signer:
    def __init__(self, keys_dir: Path) -> None:
        """The signing key in `keys_dir`; KeyringError naming the file when it is missing or no key."""
        self.keys_dir = keys_dir
        self._stamp: Stamp = None
        self._private = self._read()
        self.key_id = _key_id(self._private.public_key())
        self._public: dict[str, Ed25519PublicKey] = {}

    @classmethod
    def load_or_create(cls, keys_dir: Path) -> Signer:
        """The signing key in `keys_dir`, made if there is none; its public key file made if missing."""
        make_private_dirs(keys_dir)
        if publish(keys_dir / SIGNING_KEY, Ed25519PrivateKey.generate().private_bytes_raw()):
            logger.info("made the digests' signing key in %s", keys_dir)
        signer = cls(keys_dir)
        publish(public_key_path(keys_dir, signer.key_id), signer.public_pem())
        return signer

    @classmethod
    def load(cls, keys_dir: Path) -> Signer:
        """The signing key in `keys_dir`; KeyringError naming the file when it is missing or no key."""
        return cls(keys_dir)

    def follow(self) -> None:
        """Take up the key `keys rotate --signing` put in place since this signer read it."""
        if file_stamp(self.keys_dir / SIGNING_KEY) == self._stamp:
            return
        old = self.key_id
        self._private = self._read()
        self.key_id = _key_id(self._private.public_key())
        if self.key_id != old:
            logger.info("digests are signed with key %s now, replacing %s (rotated)", self.key_id, old)

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def vouches(self, stored: StoredDigest) -> bool:
        """Whether `stored` is signed by this key, or by one this keys_dir had before (a rotation)."""
        key_id = stored.digest.key_id
        key = self._private.public_key() if key_id == self.key_id else self._earlier(key_id)
        if key is None:
            return False
        try:
            key.verify(stored.signature, stored.body)
        except InvalidSignature:
            return False
        return True

    def public_pem(self) -> bytes:
        return self._private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)

    def _earlier(self, key_id: str) -> Ed25519PublicKey | None:
        key = self._public.get(key_id)
        if key is None:
            if not KEY_ID.fullmatch(key_id):  # from a digest, i.e. from data: never a path outside
                return None
            try:
                found, key = load_public_key(public_key_path(self.keys_dir, key_id))
            except DigestError:
                return None  # no such key here: not ours
            if found != key_id:  # a file under another key's name
                return None
            self._public[key_id] = key
        return key

    def _read(self) -> Ed25519PrivateKey:
        path = self.keys_dir / SIGNING_KEY
        if not path.exists():
            raise KeyringError(f"{path}: no signing key here (the agent makes it at its first start)")
        self._stamp = file_stamp(path)
        return Ed25519PrivateKey.from_private_bytes(read_key(path))


def rotate_signing_key(keys_dir: Path) -> tuple[str, str]:
    """Make a new signing key in `keys_dir` and sign with it from now on; (old id, new id)."""
    old = Signer.load(keys_dir)
    new = Ed25519PrivateKey.generate()
    new_id = _key_id(new.public_key())
    # Its public key first: a digest it signs must never lack the key that verifies it.
    publish(
        public_key_path(keys_dir, new_id),
        new.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
    )
    replace_file(keys_dir / SIGNING_KEY, new.private_bytes_raw())
    logger.info("signing key %s replaces %s; its public key stays for verifying", new_id, old.key_id)
    return old.key_id, new_id


def rotate_if_older(keys_dir: Path, max_age_s: float, now: float) -> tuple[str, str] | None:
    """Rotate the signing key when the active one is older than `max_age_s` at epoch `now` (its age: that
    of its public key file); (old id, new id), or None when it is younger. Only the supervisor calls
    this, so two processes never rotate at once; the sinks follow."""
    active = [info for info in signing_keys(keys_dir) if info.active]
    if not active or now - active[0].created < max_age_s:
        return None
    return rotate_signing_key(keys_dir)


class SigningKeyInfo(NamedTuple):
    key_id: str
    created: float
    """Epoch seconds: when its public key file was written."""
    active: bool


def signing_keys(keys_dir: Path) -> list[SigningKeyInfo]:
    """Every signing key that keys_dir keeps the public key of, oldest first; the active one marked."""
    try:
        active = Signer.load(keys_dir).key_id
    except KeyringError:
        active = None
    infos = []
    for path in public_keys_in(keys_dir):
        key_id = path.name.removeprefix("signing-").removesuffix(".pub")
        infos.append(SigningKeyInfo(key_id, path.stat().st_mtime, key_id == active))
    # The active key is the newest: it goes last among keys of one mtime tick (a coarse clock).
    return sorted(infos, key=lambda info: (info.created, info.active))


def _key_id(public: Ed25519PublicKey) -> str:
    return key_id_of(public.public_bytes(Encoding.Raw, PublicFormat.Raw))
