"""An event's own hash: what an `aesgcm2:` envelope's associated data binds (ondisk/envelope.py), so that
editing anything in the event breaks the decryption of its sensitive values.

The hash is the SHA-256 of the event's canonical form: every field as the event Struct holds it (fields at
their default omitted, as every encoding omits them), except that `sensitive` is replaced by the sorted
list of its field names (its values are the envelopes themselves; the names are bound, so dropping one
sensitive field is seen when the others are opened). Sinks add nothing to the Struct (`wal_seq`, `wal_id`,
the lake's partition columns live beside it), so the event read back from any of them is the same Struct.

What the stores change in a round trip, the canonical form does not see, so every reader recomputes the
hash the intake computed:
- values become what JSON holds (`msgspec.to_builtins`): a datetime in `details` its RFC 3339 text, bytes
  their base64, map keys strings, as the file sink's JSON Lines and every JSON column store them;
- a float with an integral value becomes an int, and a NaN or infinity None: PostgreSQL's JSONB prints
  1e20 as an integer, DuckDB as 100000000000000000000.0, and JSON has no NaN (msgspec writes null);
- maps are encoded with sorted keys (JSONB and MySQL reorder them).
Timestamps keep their microseconds in every store (TIMESTAMPTZ, DATETIME(6), JSON's RFC 3339); every
reader normalises them to UTC (shipper.event.AuditEvent does) before hashing.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import msgspec

_canonical = msgspec.json.Encoder(order="deterministic")


def event_hash(event: object) -> bytes:
    """The 32-byte SHA-256 of `event`'s canonical form (module docstring). `event` is an AuditEvent (this
    package sits below the event model, so it takes any Struct with a `sensitive` map)."""
    fields: dict[str, Any] = msgspec.to_builtins(event, str_keys=True)
    sensitive = fields.pop("sensitive", None)
    if sensitive:
        fields["sensitive"] = sorted(sensitive)
    # A field that became None (a NaN duration_ms) is one at its default: absent, as a store gives it back.
    canonical = {name: value for name, value in _numbers(fields).items() if value is not None}
    return hashlib.sha256(_canonical.encode(canonical)).digest()


def _numbers(value: Any) -> Any:
    """`value` with each float as JSON stores keep it: an integral one as an int, a non-finite one None.
    Only floats and containers are visited (to_builtins makes exact builtin types): strings, the bulk of
    an event, cost no call."""
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() else value
    if kind is dict:
        return {key: _numbers(item) if type(item) in _VISITED else item for key, item in value.items()}
    return [_numbers(item) if type(item) in _VISITED else item for item in value]


_VISITED = frozenset({float, dict, list})
