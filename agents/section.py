"""What every section (TOML table) of the agent's config is: a Struct with no unknown keys and a
`check()` for what msgspec's constraints cannot say.

A bound a type can state (`Positive`, a range) is checked by msgspec while it decodes, so the error
names the key (agents/config.py turns it into `sinks.file.max_files: must be positive, got 0`). A rule
between keys, or one that needs a library (a database URL's driver), is the section's `check()`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

Positive = Annotated[int, msgspec.Meta(gt=0)]


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    def check(self, key: str) -> None:
        """Raise ValueError for a value this section cannot run with, its message starting with the
        dotted key at fault (this section is at `key`). Most sections have nothing to add."""
