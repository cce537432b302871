"""Field encryption and the spool seal, on the agent's side.

keyring.py holds the keys (keys/ in the data directory); fields.py turns `sensitive` values into
envelopes and back; spool_unseal.py opens spool records that emitters sealed with shipper/spool_seal.py.
"""

from auditship.agents.crypto.errors import CryptoError, DecryptionError, KeyringError
from auditship.agents.crypto.fields import decrypt_sensitive, encrypt_sensitive, is_envelope
from auditship.agents.crypto.keyring import Keyring
from auditship.agents.crypto.spool_unseal import unseal

__all__ = [
    "CryptoError",
    "DecryptionError",
    "Keyring",
    "KeyringError",
    "decrypt_sensitive",
    "encrypt_sensitive",
    "is_envelope",
    "unseal",
]
