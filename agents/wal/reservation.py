"""The LSN reservation: `wal/seq.reserved` holds, as decimal text, an LSN no issued LSN is above.

The segments and the cursors alone do not prove which LSNs were issued: a lost WAL tail (a power cut
under `fsync = "never"`, a damaged disk, a hand) together with a deleted or rewound cursor would let a
restart issue again LSNs that a sink already holds under other events. So the writer issues LSNs only
up to the reservation, and before it passes it writes a new one (atomically and durably), ahead by
`RESERVE_SEQS`: one durable write per 65,536 LSNs, not an fsync per append. A start goes on above it.
A crash skips the unused rest of the reservation (LSNs rise but need not be consecutive: a failed
append retires its LSNs too); a clean close writes back the last LSN issued, so a restart skips none.
"""

from __future__ import annotations

import logging
from pathlib import Path

from auditship.agents.durable import write_atomically

log = logging.getLogger("auditship.wal")
RESERVATION = "seq.reserved"
RESERVE_LSNS = 1 << 16


def read_reservation(directory: Path) -> int:
    """The reserved LSN; 0 when there is none (a new WAL, or one written before reservations were).

    A damaged file is reported and counts as none: the start then goes on after the segments' and
    the cursors' LSNs, as before reservations, which is all that is left to go by."""
    path = directory / RESERVATION
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return 0
    value = text.strip()
    if not (value.isascii() and value.isdigit()):
        log.error(
            "%s: expected the highest seq reserved for the WAL (decimal digits), found %r; going on after "
            "the highest seq in the segments and cursors, and writing a new reservation at the next append",
            path,
            text[:40],
        )
        return 0
    return int(value)


def write_reservation(directory: Path, lsn: int) -> None:
    """Durably replace the reservation with `lsn`."""
    write_atomically(directory / RESERVATION, f"{lsn}\n".encode())
