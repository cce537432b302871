"""Appending to a sink's chain of digests (the format: ondisk/digests.py).

Several processes append to one chain: the sink's worker, and retention (the supervisor's thread, or
`audit-query retention`) recording what it removes. So an append holds the chain's lock (flock on
`digests/<sink>/.lock`) from reading the previous digest to publishing the next, and the next number is
always one past both the newest file and the run record, so no two digests ever share a number.

What the next digest links to, and what it carries over, is the newest digest this agent can vouch for:
the newest file when its signature is this key's and it is not behind the run record, else the run
record itself (kept in keys_dir, out of reach of whoever can write the data directory). So a deleted or
changed newest digest is not papered over: the next one links to what the agent wrote, and verify
reports the chain broken or the digest missing.

Each digest is written durably under a temporary name and renamed into place, then the run record is
replaced the same way. A crash between the two leaves a run record one behind, which the next append
(and verify) take as it is: digests must reach *at least* as far as the run record.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from auditship.agents.durable import write_atomically
from auditship.agents.integrity.signing import Signer
from auditship.ondisk.digests import (
    Digest,
    DigestedObject,
    DigestError,
    RemovedObject,
    RunRecord,
    StoredDigest,
    chain_dir,
    digest_name,
    encode_body,
    encode_file,
    encode_run_record,
    numbers,
    read_digest,
    read_run_record,
    run_record_path,
)
from auditship.ondisk.files import make_private_dirs

logger = logging.getLogger("auditship.integrity")
LOCK_NAME = ".lock"


class Change(msgspec.Struct, kw_only=True):
    """What one digest adds to the chain; the carried fields left None are the previous digest's."""

    reason: str
    objects: list[DigestedObject] = []
    removed: list[RemovedObject] = []
    gaps: list[tuple[int, int]] = []
    seq_through: int | None = None
    current: DigestedObject | None = None
    closed_through: int | None = None
    final: bool = False


class ChainWriter:
    def __init__(self, data_dir: Path, sink: str, signer: Signer, keys_dir: Path) -> None:
        self.sink = sink
        self.directory = chain_dir(data_dir, sink)
        self._signer = signer
        self._keys_dir = keys_dir
        self._newest_file = -1  # the highest number seen on disk; -1: not looked yet

    def exists(self) -> bool:
        """Whether this chain has begun (a digest on disk, or a run record)."""
        return self.tip() is not None or bool(numbers(self.directory))

    def tip(self) -> RunRecord | None:
        """The newest digest this agent vouches for (module docstring), as a run record; None for a chain
        not begun."""
        with self._locked():
            return self._tip()

    def newest(self) -> StoredDigest | None:
        """The newest digest this agent vouches for, read from its file; None when that file is not the
        one the tip names (deleted, changed) or the chain has not begun."""
        with self._locked():
            tip = self._tip()
            if tip is None:
                return None
            try:
                stored = read_digest(self.directory / digest_name(tip.number))
            except DigestError:
                return None
            return stored if stored.sha256 == tip.sha256 else None

    def append(self, change: Change) -> StoredDigest:
        """Sign and publish the next digest. Raises OSError (the chain is as it was, or the digest is in
        place and only the run record is one behind)."""
        with self._locked():
            self._signer.follow()
            tip = self._tip()
            number = max(self._newest_file, tip.number if tip else 0) + 1
            digest = Digest(
                sink=self.sink,
                number=number,
                previous_sha256=tip.sha256 if tip else None,
                key_id=self._signer.key_id,
                written=datetime.now(UTC),
                reason=change.reason,
                final=change.final,
                seq_through=_carried(change.seq_through, tip.seq_through if tip else 0),
                gaps=change.gaps,
                objects=change.objects,
                removed=change.removed,
                current=change.current if change.current is not None else (tip.current if tip else None),
                closed_through=_carried(change.closed_through, tip.closed_through if tip else 0),
            )
            body = encode_body(digest)
            path = self.directory / digest_name(number)
            write_atomically(path, encode_file(body, self._signer.sign(body)))
            self._newest_file = number
            stored = read_digest(path)
            write_atomically(
                run_record_path(self._keys_dir, self.sink), encode_run_record(RunRecord.of(stored))
            )
            return stored

    def _tip(self) -> RunRecord | None:
        try:
            record = read_run_record(self._keys_dir, self.sink)
        except DigestError as exc:
            logger.error("%s; the chain goes on from its newest digest file", exc)
            record = None
        newest = self._scan()
        if newest <= 0 or (record is not None and newest < record.number):
            return record
        try:
            stored = read_digest(self.directory / digest_name(newest))
        except DigestError as exc:
            logger.error("%s; the chain of %s goes on from its run record", exc, self.sink)
            return record
        if not self._signer.vouches(stored) or (
            record is not None and newest == record.number and stored.sha256 != record.sha256
        ):
            logger.error(
                "%s: not the digest this agent wrote (changed, or signed by another key); the chain of %s "
                "goes on from %s, and verify reports it",
                stored.path,
                self.sink,
                "its run record" if record else "nothing (a new chain)",
            )
            return record
        return RunRecord.of(stored)

    def _scan(self) -> int:
        """The highest digest number on disk: a full listing once, then a look for the next names (another
        process may have appended)."""
        if self._newest_file < 0:
            self._newest_file = max(numbers(self.directory), default=0)
        while (self.directory / digest_name(self._newest_file + 1)).exists():
            self._newest_file += 1
        return self._newest_file

    @contextmanager
    def _locked(self) -> Iterator[None]:
        make_private_dirs(self.directory)
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _carried(given: int | None, previous: int) -> int:
    return previous if given is None else given
