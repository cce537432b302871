"""The file sink: JSON Lines (or readable text) in data_dir/files/, rotated by size and compressed.

Idempotent across crashes. Every line ends with its WAL sequence number, so on open the sink truncates
a torn last line (a crash mid-write), reads the last sequence number written (from the last line, or
from the newest closed file's name when the current file is empty) and from then on skips entries at
or below it: a batch the runner offers again after a crash is never written twice.

An entry at or below it is skipped only if the files hold its event under its seq (or no longer hold
that seq at all: deleted past max_files). Another event under a written seq means the seq was issued
twice (the WAL's reservation lost with its tail, see agents/wal/reservation.py): that event is refused
to dead letters with both event ids in the reason, logged and counted by the runner, rather than
written under a seq the file holds for another event. The file keeps one event per seq, in order,
which its crash recovery and its closed files' names rely on, and the event is kept whole and shown.

A batch is DELIVERED only once its bytes are written and flushed (and fsynced, with `fsync = true`).
A failed write is cut back to the size before the batch and reported as ERRORED: the batch stays in
the WAL and is offered again. If even the cut fails, the file is re-read on the next batch exactly as
on open, so whatever made it to disk counts and nothing is written twice.

Rotation: past `max_file_size` the current file is renamed `audit-<first>-<last>.jsonl` and compressed
(filestore.compress: a temporary name, then a rename, then the original is removed). A crash at any
step is finished on the next open. At most `max_files` closed files are kept.

Sensitive values arrive encrypted by the intake and stay so, unless `encrypt_sensitive = false`: that
is the user's deliberate opt-out, and the sink then decrypts them with the keyring before writing.

With `[integrity]` on, the sink digests what it writes (digests.py): it hashes each batch as it writes
it, digests at every rotation, at least every `digest_interval_s`, and when it stops, and records the
closed files it deletes past `max_files` before it deletes them.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from auditship.agents.config import AgentConfig
from auditship.agents.crypto import Keyring, decrypt_sensitive, encrypt_sensitive
from auditship.agents.durable import fsync_directory
from auditship.agents.errors import SinkError
from auditship.agents.integrity.chain import ChainWriter
from auditship.agents.integrity.ledger import Lsns
from auditship.agents.integrity.signing import Signer
from auditship.agents.sinks import filestore
from auditship.agents.sinks.base import BuiltSink, Delivery, Entry, Refused, Sink
from auditship.agents.sinks.file.config import FileSinkConfig
from auditship.agents.sinks.file.digests import FileDigests
from auditship.ondisk import file_sink
from auditship.ondisk.data_layout import DataLayout
from auditship.ondisk.errors import AuditshipError, DecryptionError
from auditship.ondisk.files import make_private_dirs, write_all
from auditship.ondisk.lines import lines_encoder, seq_of_line
from shipper.event import AuditEvent

logger = logging.getLogger("auditship.sinks.file")

_OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


class FileSink(Sink):
    name = "file"

    def __init__(
        self, config: FileSinkConfig, data_dir: Path, keyring: Keyring, digests: FileDigests | None = None
    ) -> None:
        self._config = config
        self._digests = digests
        self._path = data_dir / config.path  # an absolute config.path stays as it is
        self._stem = self._path.stem
        self._keyring = keyring
        self._encode = lines_encoder(config.line_format)
        self._fd = -1  # -1: closed, or must be re-read before the next write (see _undo)
        self._size = 0
        self._first_seq: int | None = None  # of the current file; None while it is empty
        self._last_seq = -1  # the newest sequence number on disk; entries at or below it are repeats
        self._written = filestore.WrittenIds(self._path)

    @property
    def path(self) -> Path:
        return self._path

    def open(self) -> None:
        try:
            make_private_dirs(self._path.parent)
            self._open_current()
        except OSError as exc:
            raise SinkError(f"file sink: cannot open {exc.filename or self._path}: {exc.strerror}") from exc
        if self._digests is not None:
            try:
                self._digests.start()
            except (OSError, AuditshipError) as exc:  # the worker is restarted, and tries again
                raise SinkError(f"file sink: cannot go on with its digests: {exc}") from exc
        if self._size >= self._config.max_file_size:
            self._rotate()  # the crash came between a write and its rotation
        else:
            self._housekeep()

    def close(self) -> None:
        if self._digests is not None:
            self._digests.close()
        self._close_current()

    def tick(self) -> None:
        if self._digests is not None:
            self._digests.tick()

    def _close_current(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def write_batch(self, batch: list[Entry]) -> Delivery | Refused:
        if self._fd < 0:
            try:
                self._open_current()
            except OSError as exc:
                logger.error("file sink: cannot open %s: %s; the batch stays in the WAL", self._path, exc)
                return Delivery.ERRORED
        if batch[0].lsn > self._last_seq:  # the usual batch, nothing in it offered again
            fresh, clashes = batch, None
        else:
            fresh = [entry for entry in batch if entry.lsn > self._last_seq]
            clashes = self._clashes([entry for entry in batch if entry.lsn <= self._last_seq])
            if not fresh:
                return clashes or Delivery.DELIVERED
        # Only an event with sensitive values has anything to prepare: a call per event costs more.
        events = [self._prepare(entry.event) if entry.event.sensitive else entry.event for entry in fresh]
        data = self._encode([entry.lsn for entry in fresh], events)
        first, last = fresh[0].lsn, fresh[-1].lsn
        try:
            write_all(self._fd, data)
            if self._config.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            logger.error(
                "file sink: writing batch %d-%d to %s failed (%s: %s); "
                "batch %d-%d stays in the WAL and is retried",
                first,
                last,
                self._path,
                errno.errorcode.get(exc.errno or 0, "no errno"),
                exc.strerror or exc,
                first,
                last,
            )
            self._undo()
            return Delivery.ERRORED
        self._size += len(data)
        self._last_seq = last
        if self._first_seq is None:
            self._first_seq = first
        if self._digests is not None:
            self._digests.wrote(data, Lsns(fresh))
        if self._size >= self._config.max_file_size:
            self._rotate()
        return clashes or Delivery.DELIVERED

    def _clashes(self, repeats: list[Entry]) -> Refused | None:
        """The entries among `repeats` (seqs at or below the last written) whose seq the files hold for
        another event: refused, since writing them would give two events one seq."""
        if not repeats:
            return None
        written = self._written.between(repeats[0].lsn, repeats[-1].lsn)
        clashing = [e for e in repeats if e.lsn in written and e.event.event_id not in written[e.lsn]]
        if not clashing:
            return None
        reasons = [
            f"WAL seq {entry.lsn} was issued twice: {self._path.parent} holds event "
            f"{', '.join(sorted(written[entry.lsn]))} under it, this is event {entry.event.event_id}"
            for entry in clashing
        ]
        logger.error(
            "file sink: %d entries carry seqs already written for other events (first: %s); the WAL issued "
            "seqs twice (its seq reservation was lost with its tail?). They go to dead letters, not to %s",
            len(clashing),
            reasons[0],
            self._path,
        )
        return Refused(clashing, reasons)

    def _prepare(self, event: AuditEvent) -> AuditEvent:
        if self._config.encrypt_sensitive:
            # The intake has encrypted already; this is a guard (free for envelopes) so that a
            # plaintext value can never reach the file through a bug upstream.
            return encrypt_sensitive(event, self._keyring)
        try:
            return decrypt_sensitive(event, self._keyring)
        except DecryptionError as exc:
            logger.warning("file sink: %s; the event is written with its values still encrypted", exc)
            return event

    def _open_current(self) -> None:
        fd = os.open(self._path, _OPEN_FLAGS, 0o600)
        try:
            os.fchmod(fd, 0o600)  # O_CREAT's mode is filtered by the umask; an old file may be wider
            self._recover(fd)
            if self._digests is not None:
                self._digests.recovered(fd, self._size, self._first_seq, self._last_seq)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _recover(self, fd: int) -> None:
        """Cut a torn last line and learn the first and last sequence numbers on disk."""
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            keep = filestore.last_line_start(fd, size)
            logger.warning(
                "file sink: %s ended in a torn line (%d bytes, a crash mid-write); cut it off, its "
                "events are still in the WAL and are written again",
                self._path,
                size - keep,
            )
            os.ftruncate(fd, keep)
            os.fsync(fd)
            size = keep
        self._size = size
        if size == 0:
            closed = file_sink.closed_files(self._path.parent, self._stem)
            self._first_seq = None
            self._last_seq = max((c.last_seq for c in closed), default=-1)
            return
        start = filestore.last_line_start(fd, size - 1)
        self._last_seq = self._seq(os.pread(fd, size - 1 - start, start), "last")
        self._first_seq = self._seq(filestore.first_line(fd), "first")

    def _seq(self, line: bytes, which: str) -> int:
        seq = seq_of_line(line)
        if seq is None:
            # Without it the sink cannot tell what it already wrote, nor name the file when it closes it.
            raise SinkError(
                f"{self._path}: its {which} line has no WAL sequence number (the file was edited, or is "
                "not the sink's); move it aside and the sink starts a new one"
            )
        return seq

    def _undo(self) -> None:
        """Cut the file back to its size before the failed batch; if that fails too, close it so that
        the next batch re-reads it as on open (complete lines then count as written)."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as exc:
            logger.error("file sink: cannot cut %s back after a failed write: %s", self._path, exc)
            self._close_current()

    def _rotate(self) -> None:
        if self._first_seq is None:
            return
        name = file_sink.closed_name(self._stem, self._first_seq, self._last_seq, self._config.line_format)
        closed = self._path.with_name(name)
        if self._digests is not None:
            self._digests.closing()
        try:
            self._path.rename(closed)
        except OSError as exc:
            logger.warning("file sink: cannot rotate %s: %s; it grows until the next try", self._path, exc)
            return
        self._close_current()
        self._written.reset()
        try:
            fsync_directory(self._path.parent)
            self._open_current()
        except OSError as exc:  # what was written is safe in `closed`; the next batch opens the file again
            logger.error("file sink: after rotating %s to %s: %s", self._path, closed.name, exc)
        self._housekeep()
        if self._digests is not None:
            self._digests.rotated()

    def _housekeep(self) -> None:
        """Finish compressions that a crash or an error left undone; delete closed files past max_files."""
        try:
            self._finish_closed_files()
            self._prune()
        except OSError as exc:  # the events are safe whatever happens here; it is tried again later
            logger.warning(
                "file sink: tidying %s failed: %s; tried again at the next rotation", self._path.parent, exc
            )

    def _finish_closed_files(self) -> None:
        """Compress closed files that are not yet (a rotation cut short, or a failed compression)."""
        directory = self._path.parent
        for temp in directory.glob(f"{self._stem}-*.tmp"):
            temp.unlink(missing_ok=True)
        if self._config.compression == "none":
            return
        for closed in file_sink.scan_closed(directory, self._stem):
            if closed.compressed:
                continue
            copies = [
                closed.path.with_name(closed.path.name + sfx) for sfx in file_sink.SUFFIXES.values() if sfx
            ]
            try:
                if any(copy.exists() for copy in copies):  # the crash came before the original was removed
                    closed.path.unlink()
                    continue
                done = filestore.compress(closed.path, self._config.compression, durable=self._config.fsync)
                if self._digests is not None:
                    self._digests.compressed(closed.first_seq, done.content_sha256)
            except OSError as exc:
                logger.warning(
                    "file sink: cannot compress %s: %s; it is retried at the next rotation", closed.path, exc
                )

    def _prune(self) -> None:
        closed = file_sink.closed_files(self._path.parent, self._stem)
        olds = closed[: max(0, len(closed) - self._config.max_files)]
        policy = f"sinks.file.max_files = {self._config.max_files}"
        if (
            olds
            and self._digests is not None
            and not self._digests.removing([old.path for old in olds], policy)
        ):
            return  # not recorded, so not removed: tried again at the next rotation
        for old in olds:
            try:
                old.path.unlink()
            except OSError as exc:
                logger.warning("file sink: cannot delete %s: %s", old.path, exc)
            else:
                logger.info(
                    "file sink: deleted %s (keeping %d closed files)", old.path.name, self._config.max_files
                )


def build(config: AgentConfig) -> BuiltSink:
    layout = DataLayout(config.data_path)
    settings = config.sinks.file
    digests = None
    if config.integrity.enabled:
        writer = ChainWriter(layout.root, "file", Signer.load(config.keys_path), config.keys_path)
        current = layout.root / settings.path
        digests = FileDigests(writer, config.integrity, layout.root, current, settings.compression != "none")
    sink = FileSink(settings, layout.root, Keyring.load_or_create(config.keys_path), digests)
    return BuiltSink(sink, settings.batch_size, settings.flush_interval_s)
