"""The signing key of digests: Ed25519, made once in keys_dir, its public key kept beside it.

    signing-ed25519.key     0600, 32 raw bytes: the private key (never leaves keys_dir)
    signing-<key id>.pub    its public key, PEM: what `audit-agent keys export-public` gives an auditor,
                            and what `audit-query verify` trusts when no --public-key is given

The supervisor makes the key at the agent's first start (`load_or_create`, before any worker runs);
workers and `audit-query retention` only load it. The files are published as the keyring's are
(written privately, then linked into place), so two processes never make two keys.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from auditship.agents.crypto.key_files import publish
from auditship.ondisk.digests import SIGNING_KEY, key_id_of, public_key_path
from auditship.ondisk.errors import KeyringError
from auditship.ondisk.files import make_private_dirs
from auditship.ondisk.keys import read_key

logger = logging.getLogger("auditship.integrity")


class Signer:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.key_id = key_id_of(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @classmethod
    def load_or_create(cls, keys_dir: Path) -> Signer:
        """The signing key in `keys_dir`, made if there is none; its public key file made if missing."""
        make_private_dirs(keys_dir)
        if publish(keys_dir / SIGNING_KEY, Ed25519PrivateKey.generate().private_bytes_raw()):
            logger.info("made the digests' signing key in %s", keys_dir)
        signer = cls.load(keys_dir)
        publish(public_key_path(keys_dir, signer.key_id), signer.public_pem())
        return signer

    @classmethod
    def load(cls, keys_dir: Path) -> Signer:
        """The signing key in `keys_dir`; KeyringError naming the file when it is missing or no key."""
        path = keys_dir / SIGNING_KEY
        if not path.exists():
            raise KeyringError(f"{path}: no signing key here (the agent makes it at its first start)")
        return cls(Ed25519PrivateKey.from_private_bytes(read_key(path)))

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def signed(self, data: bytes, signature: bytes) -> bool:
        """Whether `signature` is this key's over `data`."""
        try:
            self._private.public_key().verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def public_pem(self) -> bytes:
        return self._private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
