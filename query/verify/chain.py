"""Checking one sink's chain of digests: every number from 1 to the newest (or to the run record's, if
that is further) is there, each digest is signed by a trusted key over its content, and each names the
SHA-256 of the one before it. The digests whose signature holds are what the objects are checked against:
a broken link says something before them changed, not that their own content is false.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from auditship.ondisk.digests import (
    DigestError,
    RunRecord,
    StoredDigest,
    chain_dir,
    digest_name,
    numbers,
    object_path,
    read_digest,
    verify_signature,
)
from auditship.query.verify.report import Finding, Verdict

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class CheckedChain(msgspec.Struct):
    trusted: list[StoredDigest]
    """The digests whose signature holds, oldest first."""
    findings: list[Finding]
    read: int
    """Digest files read."""


def check_chain(
    data_dir: Path, sink: str, keys: dict[str, Ed25519PublicKey], record: RunRecord | None
) -> CheckedChain:
    directory = chain_dir(data_dir, sink)
    found = numbers(directory)
    newest = max(found[-1] if found else 0, record.number if record else 0)
    findings = _missing(data_dir, sink, set(found), newest, record)
    trusted: list[StoredDigest] = []
    previous: StoredDigest | None = None
    for number in found:
        path = directory / digest_name(number)
        where = object_path(data_dir, path)
        try:
            stored = read_digest(path)
        except DigestError as exc:
            findings.append(Finding(sink, "digest", where, Verdict.MODIFIED, str(exc)))
            previous = None
            continue
        problem = _problem(stored, sink, number, keys, record)
        if problem is not None:
            findings.append(Finding(sink, "digest", where, problem[0], problem[1]))
        else:
            trusted.append(stored)
        link = _link(stored, number, previous)
        if link is not None:
            findings.append(Finding(sink, "digest", where, Verdict.CHAIN_BROKEN, link))
        elif problem is None:
            findings.append(Finding(sink, "digest", where, Verdict.VALID))
        previous = stored
    return CheckedChain(trusted, findings, len(found))


def _missing(
    data_dir: Path, sink: str, found: set[int], newest: int, record: RunRecord | None
) -> list[Finding]:
    """One finding per run of absent numbers up to `newest`."""
    findings = []
    number = 1
    while number <= newest:
        if number in found:
            number += 1
            continue
        end = number
        while end + 1 <= newest and end + 1 not in found:
            end += 1
        names = digest_name(number) if end == number else f"{digest_name(number)} to {digest_name(end)}"
        why = (
            f"the run record names digest {record.number} (written {record.written:%Y-%m-%dT%H:%M:%SZ})"
            if record is not None and end == newest and record.number == newest
            else "later digests exist"
        )
        where = object_path(data_dir, chain_dir(data_dir, sink) / names)
        findings.append(
            Finding(sink, "digest", where, Verdict.MISSING, f"{end - number + 1} digests gone; {why}")
        )
        number = end + 1
    return findings


def _problem(
    stored: StoredDigest, sink: str, number: int, keys: dict[str, Ed25519PublicKey], record: RunRecord | None
) -> tuple[Verdict, str] | None:
    signature = verify_signature(stored, keys)
    if signature is not None:
        return Verdict.SIGNATURE_INVALID, signature
    digest = stored.digest
    if digest.number != number or digest.sink != sink:
        return (
            Verdict.MODIFIED,
            f"signed as digest {digest.number} of sink {digest.sink}, found as {number} of {sink}",
        )
    if record is not None and record.number == number and record.sha256 != stored.sha256:
        return Verdict.MODIFIED, f"the run record names SHA-256 {record.sha256} for it, it is {stored.sha256}"
    return None


def _link(stored: StoredDigest, number: int, previous: StoredDigest | None) -> str | None:
    """Why `stored` does not link to the digest before it; None when it does (or that one is missing,
    which is reported already)."""
    named = stored.digest.previous_sha256
    if number == 1:
        return None if named is None else "the first digest names a previous one"
    if previous is None or previous.digest.number != number - 1:
        return None
    if named != previous.sha256:
        return f"it names previous digest SHA-256 {named}, and digest {number - 1} is {previous.sha256}"
    return None
