"""The intake's blind indexing: which sensitive fields get a blind index (`[encryption] blind_index`),
and the key that makes it (ondisk/blind.py), created in keys_dir at the first start that needs it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from auditship.agents.crypto.key_files import publish
from auditship.ondisk.blind import BLIND_KEY, BlindIndex
from auditship.ondisk.keys import KEY_BYTES

logger = logging.getLogger("auditship.crypto")


class Blinding(NamedTuple):
    key: BlindIndex
    fields: frozenset[str]

    def token(self, name: str, value: object) -> str | None:
        """The blind index of `value` when field `name` is one to index, else None."""
        return self.key.token(name, value) if name in self.fields else None


def load_blinding(keys_dir: Path, fields: Iterable[str]) -> Blinding | None:
    """The blinding of `fields` (None when there are none), its key made in `keys_dir` if missing (one
    process wins when several start at once: key_files.publish)."""
    wanted = frozenset(fields)
    if not wanted:
        return None
    if publish(keys_dir / BLIND_KEY, os.urandom(KEY_BYTES)):
        logger.info("made the blind index key in %s", keys_dir)
    return Blinding(BlindIndex.load(keys_dir), wanted)
