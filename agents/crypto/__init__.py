"""Field encryption and the spool seal, on the agent's side.

keyring.py creates, holds and rotates the keys (in keys_dir, written by key_files.py; keys_dir.py prepares
it and moves older agents' keys there; the intake's keyring counts each key's uses, key_uses.py, and
rotates it at the bounds of rotation.py; key_list.py is what `keys list` shows); fields.py turns
`sensitive` values into envelopes and back; spool_unseal.py opens spool records that emitters sealed with
shipper/spool_seal.py. The envelope's format, the key files and the errors are ondisk's (envelope.py,
keys.py, errors.py), which readers such as `audit-query cat --decrypt` use without the agent.
"""

from auditship.agents.crypto.fields import decrypt_sensitive, encrypt_sensitive
from auditship.agents.crypto.keyring import Keyring
from auditship.agents.crypto.spool_unseal import unseal

__all__ = ["Keyring", "decrypt_sensitive", "encrypt_sensitive", "unseal"]
