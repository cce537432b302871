"""The field keys as `audit-agent keys list` shows them: id, creation time, use count, state."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from auditship.agents.crypto.key_uses import read_uses, uses_path
from auditship.agents.crypto.keyring import created_at
from auditship.ondisk.keys import FieldKeys


class FieldKeyInfo(NamedTuple):
    key_id: str
    created: float
    """Epoch seconds."""
    uses: int | None
    """Values sealed, as of the count's last write (at most a second old while the agent runs); None
    when its file cannot be read."""
    active: bool


def field_keys(keys_dir: Path) -> list[FieldKeyInfo]:
    """Every field key in `keys_dir`, oldest first; KeyringError when there is no keyring there."""
    keys = FieldKeys.load(keys_dir)
    infos = []
    for key_id in keys.key_ids():
        uses = read_uses(uses_path(keys_dir, key_id))
        infos.append(
            FieldKeyInfo(
                key_id,
                created_at(keys_dir, key_id),
                None if uses is None else uses.sealed,
                key_id == keys.active_key_id,
            )
        )
    return infos
