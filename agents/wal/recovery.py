"""The writer's start: make every segment whole again after a crash, a power cut or damage on disk.

A torn record at a segment's end (a write cut short) is cut off with a warning. Damage anywhere else
(a bad checksum, an absurd length) never stops the start: the segment is first copied into
`quarantine/` as evidence, then rebuilt from what still parses (the valid prefix, then each valid
record found past the damage with a larger LSN). The rebuilt file replaces the old one by rename, so a
reader still holding the old file reads on undisturbed and skips the damage itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import NamedTuple

from auditship.agents.durable import fsync_directory
from auditship.agents.wal.scanner import CHUNK_BYTES, Damage, ScanEnd, SegmentScanner
from auditship.agents.wal.segment import QUARANTINE, Segment, list_segments
from auditship.ondisk.files import write_all

log = logging.getLogger("auditship.wal")
SALVAGE_SUFFIX = ".salvage"


class Recovered(NamedTuple):
    segments: list[tuple[Segment, int]]
    """Every segment with its size after repair, oldest first."""
    last_lsn: int
    """The largest LSN in any segment; 0 when there is none."""
    damaged: set[int]
    """The first LSNs of the segments found damaged."""


class Survey(NamedTuple):
    spans: list[tuple[int, int]]
    """The byte ranges of good records, in order."""
    damages: list[Damage]
    torn: bool
    last_lsn: int


def recover(directory: Path) -> Recovered:
    for leftover in directory.glob(f"*{SALVAGE_SUFFIX}"):
        leftover.unlink()  # a rebuild interrupted by a crash; its segment is still whole
    segments: list[tuple[Segment, int]] = []
    damaged: set[int] = set()
    last_lsn = 0
    for segment in list_segments(directory):
        survey = _survey(segment)
        segments.append((segment, _repair(segment, survey, directory / QUARANTINE)))
        if survey.damages:
            damaged.add(segment.first_lsn)
        last_lsn = max(last_lsn, survey.last_lsn)
    return Recovered(segments, last_lsn, damaged)


def _survey(segment: Segment) -> Survey:
    scanner = SegmentScanner(segment)
    try:
        spans: list[tuple[int, int]] = []
        damages: list[Damage] = []
        span_start = 0
        while (ended := scanner.skim()) is ScanEnd.DAMAGED:
            damage = scanner.skip_damage(final=True)
            damages.append(damage)
            spans.append((span_start, damage.start))
            if damage.resume is None:
                return Survey(spans, damages, False, scanner.last_lsn)
            span_start = damage.resume
        spans.append((span_start, scanner.offset))
        return Survey(spans, damages, ended is ScanEnd.TORN, scanner.last_lsn)
    finally:
        scanner.close()


def _repair(segment: Segment, survey: Survey, quarantine: Path) -> int:
    """Returns the segment's size after repair."""
    size = segment.path.stat().st_size
    kept = sum(end - start for start, end in survey.spans)
    if kept == size:
        return size
    if survey.damages:
        copy = quarantine / f"{segment.path.name}.{time.time_ns()}"
        shutil.copyfile(segment.path, copy)
        copy.chmod(0o600)
        for damage in survey.damages:
            log.error(
                "%s: damaged record at byte %d: %s; the segment as it was is copied to %s",
                segment.path,
                damage.start,
                _what_was_lost(damage, size),
                copy,
            )
    if survey.torn:
        end = survey.spans[-1][1]
        log.warning(
            "%s: torn record at byte %d (a write cut short by a crash or power cut): %d bytes cut off, "
            "the log carries on after seq %d",
            segment.path,
            end,
            size - end,
            survey.last_lsn,
        )
    if len(survey.spans) == 1:
        os.truncate(segment.path, kept)
    else:
        _rebuild(segment.path, survey.spans)
    return kept


def _what_was_lost(damage: Damage, size: int) -> str:
    if damage.resume is None:
        return (
            f"bytes {damage.start}-{size} hold no valid record and are cut off; "
            f"records after seq {damage.last_lsn} in this segment are lost"
        )
    first_lost, next_lsn = damage.last_lsn + 1, damage.next_lsn or 0
    lost = f"seqs {first_lost}-{next_lsn - 1} are lost" if next_lsn > first_lost else "no seq is lost"
    return f"bytes {damage.start}-{damage.resume} skipped, {lost}, records resume at seq {next_lsn}"


def _rebuild(path: Path, spans: list[tuple[int, int]]) -> None:
    """Replace `path` by the concatenation of its good spans, atomically."""
    temporary = path.with_name(path.name + SALVAGE_SUFFIX)
    source = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        for start, end in spans:
            offset = start
            while offset < end:
                chunk = os.pread(source, min(CHUNK_BYTES, end - offset), offset)
                if not chunk:
                    break  # the file shrank under us: keep what there is
                write_all(target, chunk)
                offset += len(chunk)
        os.fsync(target)
    finally:
        os.close(source)
        os.close(target)
    temporary.replace(path)
    fsync_directory(path.parent)
