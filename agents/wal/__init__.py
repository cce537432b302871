"""The write-ahead log: segments the intake appends to, and one cursor per sink reading them.

Each record is numbered by its LSN (log sequence number), from 1, rising, never issued twice. Names that
outlive the code keep the older word, seq: `seq.reserved`, the lake's `wal_seq` column, the dead letters'
`seq` key, and log messages ("WAL seq").

    wal/<first_lsn:020d>.wal   segments: records `encode_record(<u64 LSN><frame>)`, LSNs from 1, rising
    wal/cursors/<sink>         the last LSN the sink's destination has (decimal text, replaced atomically)
    wal/seq.reserved           no LSN above it was ever issued (decimal text, replaced atomically)
    wal/quarantine/            copies of segments found damaged, kept as evidence
    wal/writer.lock            held by the one writer
    wal/id                     the WAL's random identity, made once (identity.py): (id, LSN) names a record

`WriteAheadLog` is the writer (the intake process); `WalReader` reads for one sink, in its own process.
"""

from auditship.agents.wal.log import WriteAheadLog
from auditship.agents.wal.reader import WalReader
from auditship.agents.wal.record import WalRecord

__all__ = ["WalReader", "WalRecord", "WriteAheadLog"]
