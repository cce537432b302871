"""The file sink's digests (agents/integrity/): its closed files, and claims on its current file.

The current file grows, so a digest claims a prefix of it: its size then, and the SHA-256 of those
bytes. The sink hashes what it writes as it writes it (one `update` per batch), so a claim costs no
read. A closed file is digested once it is final (compressed, unless `compression = "none"`), in order:
a digest lists the closed files after the last one listed (`closed_through`) and stops at the first that
is not final yet, which a later digest lists.

The sink also watches its own files. When it opens, the current file's claimed prefix must still hash
as claimed; when it closes a file, what it compresses must hash as what it wrote. A difference (someone
changed the file under it) is logged as an error and recorded on the object (`anomaly`), which verify
reports as modified.

After a crash, what was written and not digested (the current file past its claim, closed files past
`closed_through`) is read back when the sink opens, its seqs go to the ledger in order, and the `start`
digest lists it. The chain's first digest adopts whatever files are already there.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from auditship.agents.config import IntegrityConfig
from auditship.agents.integrity.chain import ChainWriter, Change
from auditship.agents.integrity.ledger import SeqLedger
from auditship.agents.integrity.sink_digests import SinkDigests
from auditship.ondisk import file_sink
from auditship.ondisk.digests import DigestedObject, RemovedObject, object_path
from auditship.ondisk.file_sink import ClosedFile, CorruptFileError
from auditship.ondisk.hashing import CHUNK, sha256_file

logger = logging.getLogger("auditship.sinks.file")


class _Written:
    """What the sink wrote to its current file since it opened it: hashed as it went."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.events = 0
        self.first_seq: int | None = None
        self.last_seq: int | None = None


class FileDigests(SinkDigests):
    def __init__(
        self, writer: ChainWriter, settings: IntegrityConfig, data_dir: Path, current: Path, compressed: bool
    ) -> None:
        super().__init__(writer, settings)
        self._data_dir = data_dir
        self._current = current
        self._compressed = compressed  # whether closed files become final only once compressed
        self._written = _Written()
        self._claim: DigestedObject | None = None
        self._closed_through = 0
        self._anomaly: str | None = None  # found in the current file; it goes with it when it closes
        self._closing: dict[int, tuple[str, int, str | None]] = {}
        """Closed files not yet digested, by first seq: what the sink wrote to them (SHA-256, events), and
        an anomaly found in them."""
        self._content: dict[int, str] = {}
        """The SHA-256 of what compression read, by first seq."""

    def recovered(self, fd: int, size: int, first_seq: int | None, last_seq: int) -> None:
        """The sink (re)opened its current file, of `size` bytes: hash what it holds."""
        self._written = _Written()
        offset = 0
        while offset < size and (chunk := os.pread(fd, min(CHUNK, size - offset), offset)):
            self._written.sha256.update(chunk)
            self._written.events += chunk.count(b"\n")
            offset += len(chunk)
        self._written.size = offset
        self._written.first_seq = first_seq
        self._written.last_seq = last_seq if first_seq is not None else None

    def wrote(self, data: bytes, seqs: Sequence[int]) -> None:
        """A batch of lines for `seqs` is in the current file (after a successful write)."""
        written = self._written
        written.sha256.update(data)
        written.size += len(data)
        written.events += len(seqs)
        if written.first_seq is None:
            written.first_seq = seqs[0]
        written.last_seq = seqs[-1]
        if self.ledger.wrote(seqs):
            self.digest("gap")
        else:
            self.tick()

    def closing(self) -> None:
        """The current file is about to be renamed to a closed file: remember what was written to it."""
        if self._written.first_seq is not None:
            self._closing[self._written.first_seq] = (
                self._written.sha256.hexdigest(),
                self._written.events,
                self._anomaly,
            )
        self._anomaly = None

    def compressed(self, first_seq: int, content_sha256: str) -> None:
        self._content[first_seq] = content_sha256

    def rotated(self) -> None:
        self.digest("rotation")

    def removing(self, paths: list[Path], policy: str) -> bool:
        """Record that `paths` (closed files past max_files) are removed; True once recorded, and only then
        may they go."""
        removed = [RemovedObject(object_path(self._data_dir, path), "max_files", policy) for path in paths]
        return self.append(Change(reason="max_files", removed=removed))

    def start(self) -> None:
        """After the sink opened: go on from the chain's tip (or begin the chain), digesting what was
        written since."""
        tip = self.writer.tip()
        if tip is None:
            self._adopt()
            return
        self.ledger = SeqLedger(tip.seq_through)
        self._claim, self._closed_through = tip.current, tip.closed_through
        self.started = True
        for closed in self._closed_after(final_only=False):
            self._closing[closed.first_seq] = self._read_back(closed)
        self._check_claim()
        self.digest("start", always=True)

    def _adopt(self) -> None:
        """The chain's first digest: the files already there, as they are."""
        closed = self._closed_after()
        objects = [self._closed_object(c, adopted=True) for c in closed]
        claim = self._claim_now(adopted=True)
        self.ledger = SeqLedger(max([c.last_seq for c in closed] + [claim.last_seq or 0]))
        self.started = True
        change = Change(reason="start", objects=objects, current=claim)
        change.closed_through = closed[-1].last_seq if closed else 0
        self.append(change)  # a failure is logged; the adopted files then go with the next digest
        self._digested(change)

    def _read_back(self, closed: ClosedFile) -> tuple[str, int, str | None]:
        """A closed file the chain has not seen, after a crash: its seqs to the ledger, its count."""
        seqs = self._seqs(closed.path, 0)
        self.ledger.wrote(seqs)
        return "", len(seqs), None

    def _check_claim(self) -> None:
        """The current file's claimed prefix must hash as claimed; what lies past it goes to the ledger."""
        claim, written = self._claim, self._written
        if claim is None or written.first_seq is None:
            return
        start = 0
        if claim.first_seq == written.first_seq:
            _, now = sha256_file(self._current, claim.size)
            if now != claim.sha256:
                self._anomaly = (
                    f"its first {claim.size} bytes changed after a digest claimed them "
                    f"(SHA-256 {claim.sha256}, now {now})"
                )
                logger.error("file sink: %s: %s", self._current, self._anomaly)
            start = claim.size
        self.ledger.wrote(self._seqs(self._current, start))

    def _seqs(self, path: Path, start: int) -> list[int]:
        try:
            return [seq for seq in file_sink.line_seqs(path, start) if seq is not None]
        except (OSError, CorruptFileError) as exc:
            logger.error("file sink: cannot read %s back for its digest: %s", path, exc)
            return []

    def _has_pending(self) -> bool:
        claim = self._claim
        return super()._has_pending() or claim is None or claim.size != self._written.size

    def _change(self, reason: str) -> Change | None:
        closed = self._closed_after()
        objects = [self._closed_object(c, adopted=False) for c in closed]
        claim = self._claim
        current = None
        if claim is None or claim.size != self._written.size or claim.first_seq != self._written.first_seq:
            current = self._claim_now(adopted=False)
        if not objects and current is None:
            return None
        return Change(
            reason=reason,
            objects=objects,
            current=current,
            closed_through=closed[-1].last_seq if closed else None,
        )

    def _digested(self, change: Change) -> None:
        self._claim = change.current or self._claim
        if change.closed_through is not None:
            self._closed_through = change.closed_through
            for first in [first for first in self._closing if first <= self._closed_through]:
                del self._closing[first]
                self._content.pop(first, None)

    def _closed_after(self, *, final_only: bool = True) -> list[ClosedFile]:
        """The closed files after `closed_through`, oldest first; with `final_only`, up to the first one
        that is not final yet."""
        found = []
        for closed in file_sink.closed_files(self._current.parent, self._current.stem):
            if closed.first_seq <= self._closed_through:
                continue
            if final_only and self._compressed and not closed.compressed:
                break
            found.append(closed)
        return found

    def _closed_object(self, closed: ClosedFile, *, adopted: bool) -> DigestedObject:
        size, sha = sha256_file(closed.path)
        # One the sink neither wrote nor read back since it opened was there before the chain began.
        adopted = adopted or closed.first_seq not in self._closing
        wrote, events, anomaly = self._closing.get(closed.first_seq, ("", None, None))
        content = self._content.get(closed.first_seq) if closed.compressed else sha
        if wrote and content is not None and content != wrote:
            anomaly = (
                anomaly or f"its content (SHA-256 {content}) is not what the sink wrote (SHA-256 {wrote})"
            )
            logger.error("file sink: %s: %s", closed.path, anomaly)
        return DigestedObject(
            object_path(self._data_dir, closed.path),
            "closed",
            size,
            sha,
            closed.first_seq,
            closed.last_seq,
            None if adopted else events,
            adopted,
            anomaly,
        )

    def _claim_now(self, *, adopted: bool) -> DigestedObject:
        written = self._written
        return DigestedObject(
            object_path(self._data_dir, self._current),
            "current",
            written.size,
            written.sha256.hexdigest(),
            written.first_seq,
            written.last_seq,
            written.events,
            adopted,
            self._anomaly,
        )
