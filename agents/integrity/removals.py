"""Records of removals made outside a sink's worker (retention), appended to the sink's chain before
anything goes, so that verify reports them as declared and never as missing.

A sink whose chain has not begun needs no record (nothing claims its objects). One whose chain has
begun but whose signing key cannot be loaded, or whose record cannot be written, keeps its objects: the
caller reports them not removed, with the reason.
"""

from __future__ import annotations

from pathlib import Path

from auditship.agents.integrity.chain import ChainWriter, Change
from auditship.agents.integrity.signing import Signer
from auditship.ondisk.digests import (
    RemovalReason,
    RemovedObject,
    chain_dir,
    numbers,
    object_path,
    read_run_record,
)
from auditship.ondisk.errors import AuditshipError


def record_removals(
    data_dir: Path, keys_dir: Path, sink: str, paths: list[Path], *, reason: RemovalReason, policy: str
) -> str | None:
    """Record that `paths` (the sink's objects) are removed under `policy`; None once recorded (or when
    the sink has no chain), else why not, and they must stay."""
    if not paths or not _has_chain(data_dir, keys_dir, sink):
        return None
    removed = [RemovedObject(object_path(data_dir, path), reason, policy) for path in paths]
    try:
        writer = ChainWriter(data_dir, sink, Signer.load(keys_dir), keys_dir)
        writer.append(Change(reason=reason, removed=removed))
    except (OSError, AuditshipError) as exc:
        return f"not removed: its removal cannot be recorded in the {sink} sink's digests ({exc})"
    return None


def _has_chain(data_dir: Path, keys_dir: Path, sink: str) -> bool:
    try:
        recorded = read_run_record(keys_dir, sink) is not None
    except AuditshipError:
        recorded = True  # there is one, damaged: the chain has begun
    return recorded or bool(numbers(chain_dir(data_dir, sink)))
