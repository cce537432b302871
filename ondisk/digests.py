"""Digests: what a sink signs about the objects it wrote, chained, and the run record that says how far
the chain must reach. The agent writes them (agents/integrity/); `audit-query verify` reads them.

    <data_dir>/digests/<sink>/000000000001.digest    one file per digest, numbered from 1, never rewritten
    <keys_dir>/run-<sink>.json                       the run record: the newest digest's number and hash
    <keys_dir>/signing-ed25519.key                   0600: the Ed25519 key that signs (32 raw bytes)
    <keys_dir>/signing-<key id>.pub                  its public key, PEM: what verifies

A digest file is two lines: the body (a JSON object, `Digest`) and the signature line (`{"signature":
"<base64>"}`), the Ed25519 signature of the body's bytes exactly as they are in the file. The body names
the SHA-256 of the whole previous digest file (`previous_sha256`), so each digest covers every one
before it: deleting or changing one breaks the link of the next. The newest has no next: the run record,
kept outside the data directory (a backup or a writer of the data cannot roll it back), names it, and a
chain that ends before it has lost its newest digests.

A body lists the objects written since the previous digest (`objects`: path relative to the data
directory, size, SHA-256, first and last WAL seq, event count), what was removed on purpose (`removed`:
path, why, under which policy), the WAL seqs the sink had no event for (`gaps`), and what the sink needs
to go on after a restart (`seq_through`, the highest seq written; the file sink's `current` claim and
`closed_through`), carried over from the previous digest when unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec

from auditship.ondisk.data_layout import DataLayout
from auditship.ondisk.errors import AuditshipError

if TYPE_CHECKING:  # cryptography is imported where a key is read: ondisk stays light at import
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = 1
SIGNING_KEY = "signing-ed25519.key"
KEY_ID = re.compile(r"s-[0-9a-f]{16}")
_DIGEST_NAME = re.compile(r"(\d{12})\.digest")
_PUBLIC_NAME = re.compile(r"signing-(s-[0-9a-f]{16})\.pub")
_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----\r?\n.*?-----END PUBLIC KEY-----", re.DOTALL)

ObjectKind = Literal["current", "closed", "part"]
RemovalReason = Literal["retention", "compaction", "max_files", "quarantine", "compaction_undone"]


class DigestError(AuditshipError):
    """A digest file that is not one (unreadable, malformed): the message names it."""


class DigestedObject(msgspec.Struct, frozen=True, omit_defaults=True):
    """One object as a digest saw it: a closed file, the current file's prefix of `size` bytes, a part."""

    path: str
    """Relative to the data directory, with `/` (absolute when the object lies outside it)."""
    kind: ObjectKind
    size: int
    sha256: str
    first_seq: int | None = None
    """None for an empty current file."""
    last_seq: int | None = None
    events: int | None = None
    """None when not counted: an object adopted by the chain's first digest."""
    adopted: bool = False
    """It was there before this chain began: what it held before then is not proven."""
    anomaly: str | None = None
    """What the agent found wrong with it as it digested it (the current file changed under the sink)."""


class RemovedObject(msgspec.Struct, frozen=True, omit_defaults=True):
    """An object the agent removed (or replaced) on purpose, recorded before it went."""

    path: str
    reason: RemovalReason
    policy: str
    """What decided it, as the agent's config or command says: `retention.days = 365`,
    `sinks.file.max_files = 10`, the merged part, DuckDB's error."""
    replaced_by: str | None = None
    """Compaction: the merged part that holds its rows now."""


class Digest(msgspec.Struct, frozen=True, kw_only=True):
    format: int = FORMAT
    sink: str
    number: int
    previous_sha256: str | None
    key_id: str
    written: datetime
    reason: str
    """What made the sink write it: start, interval, rotation, parts, gap, compaction, retention,
    max_files, quarantine, recovery, shutdown."""
    final: bool = False
    """The sink stopped after it: nothing it wrote is left undigested."""
    seq_through: int = 0
    """The highest WAL seq the sink had written (or declared a gap for) when it was made."""
    gaps: list[tuple[int, int]] = []
    """New since the previous digest: ranges of WAL seqs, at most `seq_through`, the sink has no event for
    (LSNs the WAL skipped after a crash, records that did not decode, events refused to dead letters)."""
    objects: list[DigestedObject] = []
    removed: list[RemovedObject] = []
    current: DigestedObject | None = None
    """The file sink's current file as of this digest (carried over when unchanged)."""
    closed_through: int = 0
    """The file sink: the last seq of the newest closed file digested (carried over)."""


class Signature(msgspec.Struct):
    signature: str


class StoredDigest(msgspec.Struct, frozen=True):
    """A digest as read from its file."""

    path: Path
    digest: Digest
    body: bytes
    signature: bytes
    sha256: str
    """Of the whole file: what the next digest names."""


class RunRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The newest digest of a sink's chain, kept in keys_dir: digests must exist at least up to it. It
    carries what that digest carries, so that a sink goes on from it even when the newest digest in the
    data directory was deleted or changed."""

    sink: str
    number: int
    sha256: str
    written: datetime
    final: bool
    seq_through: int
    closed_through: int = 0
    current: DigestedObject | None = None

    @classmethod
    def of(cls, stored: StoredDigest) -> RunRecord:
        digest = stored.digest
        return cls(
            sink=digest.sink,
            number=digest.number,
            sha256=stored.sha256,
            written=digest.written,
            final=digest.final,
            seq_through=digest.seq_through,
            closed_through=digest.closed_through,
            current=digest.current,
        )


_body_encoder = msgspec.json.Encoder()
_body_decoder = msgspec.json.Decoder(Digest)
_signature_decoder = msgspec.json.Decoder(Signature)
_run_decoder = msgspec.json.Decoder(RunRecord)


def chain_dir(data_dir: Path, sink: str) -> Path:
    return DataLayout(data_dir).digests / sink


def digest_name(number: int) -> str:
    return f"{number:012d}.digest"


def run_record_path(keys_dir: Path, sink: str) -> Path:
    return keys_dir / f"run-{sink}.json"


def public_key_path(keys_dir: Path, key_id: str) -> Path:
    return keys_dir / f"signing-{key_id}.pub"


def object_path(data_dir: Path, path: Path) -> str:
    """How a digest names `path`: relative to the data directory when it lies inside it."""
    return path.relative_to(data_dir).as_posix() if path.is_relative_to(data_dir) else str(path)


def encode_body(digest: Digest) -> bytes:
    return _body_encoder.encode(digest)


def encode_file(body: bytes, signature: bytes) -> bytes:
    line = _body_encoder.encode(Signature(base64.b64encode(signature).decode()))
    return body + b"\n" + line + b"\n"


def numbers(directory: Path) -> list[int]:
    """The numbers of the digest files in a chain's directory, ascending."""
    if not directory.is_dir():
        return []
    found = [_DIGEST_NAME.fullmatch(path.name) for path in directory.iterdir()]
    return sorted(int(match[1]) for match in found if match)


def read_digest(path: Path) -> StoredDigest:
    """Read and decode one digest file; DigestError naming it when it is not one. The signature is not
    checked here (`verify_signature`)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DigestError(f"{path}: cannot read: {exc.strerror}") from exc
    body, newline, rest = data.partition(b"\n")
    if not newline or not rest.endswith(b"\n"):
        raise DigestError(f"{path}: not a digest: not a body line and a signature line")
    try:
        digest = _body_decoder.decode(body)
        signature = base64.b64decode(_signature_decoder.decode(rest[:-1]).signature, validate=True)
    except (msgspec.DecodeError, ValueError) as exc:
        raise DigestError(f"{path}: not a digest: {exc}") from exc
    return StoredDigest(path, digest, body, signature, hashlib.sha256(data).hexdigest())


def key_id_of(public_raw: bytes) -> str:
    """A signing key's id: `s-` and the first 16 hex digits of the SHA-256 of its raw public key."""
    return f"s-{hashlib.sha256(public_raw).hexdigest()[:16]}"


def load_public_key(path: Path) -> tuple[str, Ed25519PublicKey]:
    """A PEM public key file: its key id and the key; DigestError naming the file when it is not one
    Ed25519 public key."""
    keys = load_public_keys(path)
    if len(keys) != 1:
        raise DigestError(f"{path}: holds {len(keys)} public keys, not one")
    return next(iter(keys.items()))


def load_public_keys(path: Path) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 public keys of a PEM file by key id: one key, or the bundle of every signing key that
    `audit-agent keys export-public` writes; DigestError naming the file when one is not such a key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

    try:
        blocks = _PEM_BLOCK.findall(path.read_bytes())
    except OSError as exc:
        raise DigestError(f"{path}: cannot read the public key: {exc.strerror}") from exc
    if not blocks:
        raise DigestError(f"{path}: not a PEM public key: no BEGIN PUBLIC KEY block")
    keys = {}
    for block in blocks:
        try:
            key = load_pem_public_key(block)
        except ValueError as exc:
            raise DigestError(f"{path}: not a PEM public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise DigestError(f"{path}: not an Ed25519 public key ({type(key).__name__})")
        keys[key_id_of(key.public_bytes(Encoding.Raw, PublicFormat.Raw))] = key
    return keys


def public_keys_in(keys_dir: Path) -> Iterator[Path]:
    """The signing public keys kept in keys_dir, one file per key that ever signed."""
    if keys_dir.is_dir():
        yield from sorted(path for path in keys_dir.iterdir() if _PUBLIC_NAME.fullmatch(path.name))


def verify_signature(stored: StoredDigest, keys: dict[str, Ed25519PublicKey]) -> str | None:
    """None when the digest's signature is its key's over its body; else why not."""
    from cryptography.exceptions import InvalidSignature

    key = keys.get(stored.digest.key_id)
    if key is None:
        return f"signed by key {stored.digest.key_id}, which is not a trusted signing key"
    try:
        key.verify(stored.signature, stored.body)
    except InvalidSignature:
        return f"its signature is not key {stored.digest.key_id}'s over its content"
    return None


def read_run_record(keys_dir: Path, sink: str) -> RunRecord | None:
    """The sink's run record; None when there is none. DigestError when it is there but unreadable."""
    path = run_record_path(keys_dir, sink)
    try:
        return _run_decoder.decode(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DigestError(f"{path}: cannot read the run record: {exc.strerror}") from exc
    except msgspec.DecodeError as exc:
        raise DigestError(f"{path}: not a run record: {exc}") from exc


def encode_run_record(record: RunRecord) -> bytes:
    return _body_encoder.encode(record) + b"\n"
