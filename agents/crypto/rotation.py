"""When the intake's field key is due for rotation: by the values it sealed, or by its age."""

from __future__ import annotations

from typing import NamedTuple

DAY_S = 86_400.0


class Rotation(NamedTuple):
    """The bounds of `[keys]` (agents/config.py)."""

    max_encryptions: int
    max_days: float

    def reason(self, key_id: str, encryptions: int, created: float, now: float) -> str | None:
        """Why `key_id`, made at `created` (epoch seconds), must not seal values that would bring its
        count to `encryptions`; None while it may."""
        if encryptions > self.max_encryptions:
            return f"field key {key_id} reached keys.rotate_after_encryptions = {self.max_encryptions}"
        age_days = (now - created) / DAY_S
        if age_days >= self.max_days:
            limit = f"keys.rotate_after_days = {self.max_days:g}"
            return f"field key {key_id} is {age_days:.1f} days old ({limit})"
        return None
