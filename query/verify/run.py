"""`verify`: one sink's chain, then its objects, then its continuity, for each sink asked; the report.

What verify trusts: the public keys it is given (`--public-key`, what `audit-agent keys export-public`
wrote), else those kept in keys_dir; and the run records in keys_dir, when it can read them, for how far
each chain must reach. Without a run record (a copy of the data verified on another machine), the newest
digests of a chain could be gone unseen: the report says so in a note.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from auditship.agents.config import AgentConfig
from auditship.ondisk.digests import (
    DigestError,
    RunRecord,
    chain_dir,
    load_public_keys,
    numbers,
    public_keys_in,
    read_run_record,
)
from auditship.query.errors import QueryError
from auditship.query.verify import continuity
from auditship.query.verify.chain import check_chain
from auditship.query.verify.envelopes import lake_values_in_clear
from auditship.query.verify.objects import ObjectChecker, Window
from auditship.query.verify.report import Finding, Report, Summary, summarize
from auditship.query.verify.state import replay

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SINKS = ("file", "parquet")


def verify(
    data_dir: Path,
    keys_dir: Path,
    *,
    config: AgentConfig | None = None,
    sink: str = "all",
    public_keys: Sequence[Path] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> Report:
    """Verify the digests of `sink` (file, parquet, or all that have digests) under `data_dir`. Raises
    QueryError for what makes verifying impossible (no digests, no key); everything else is a finding."""
    started = time.perf_counter()
    if not data_dir.is_dir():
        raise QueryError(f"{data_dir}: no such data directory (see --data-dir, --config)")
    keys = _trusted_keys(keys_dir, public_keys)
    records = {name: _run_record(keys_dir, name) for name in SINKS}
    chosen = _sinks(data_dir, sink, records)
    sinks = (config or AgentConfig()).sinks
    window: Window = (since, until)
    findings: list[Finding] = []
    summary = Summary(chosen, 0, 0, 0, 0.0, {}, 0, [])
    db: duckdb.DuckDBPyConnection | None = None

    def connection() -> duckdb.DuckDBPyConnection:
        nonlocal db
        db = db or duckdb.connect()
        return db

    try:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            for name in chosen:
                record = records[name]
                if record is None:
                    summary.notes.append(
                        f"{name}: no run record in {keys_dir}, so digests gone from the end of its chain "
                        "(or a data directory rolled back whole) cannot be seen; verify where keys_dir is"
                    )
                chain = check_chain(data_dir, name, keys, record)
                state = replay(chain.trusted, record)
                checker = ObjectChecker(data_dir, name, state, window)
                # The current file hashes in a thread of the pool while the others hash in the rest.
                current = pool.submit(checker.current) if name == "file" else None
                checker.listed(pool, connection)
                if current is not None:
                    checker.add(current.result())
                    checker.undigested_files(data_dir / sinks.file.path)
                    found = continuity.findings(name, continuity.file_holes(state))
                else:
                    checker.undigested_parts(data_dir / sinks.parquet.path)
                    after = state.seq_through
                    holes = continuity.pending_holes(connection(), checker.pending_parts, after)
                    unaccounted = continuity.lake_unaccounted(state)
                    found = continuity.findings(name, holes) + ([unaccounted] if unaccounted else [])
                    found += lake_values_in_clear(
                        connection(), data_dir, checker.pending_parts, checker.findings
                    )
                findings += chain.findings + checker.findings + found
                summary.digests += chain.read
                summary.objects += checker.objects
                summary.bytes_hashed += checker.bytes_hashed
                summary.removed += len(state.removed)
    finally:
        if db is not None:
            db.close()
    summary.seconds = time.perf_counter() - started
    return summarize(findings, summary)


def _trusted_keys(keys_dir: Path, given: Sequence[Path]) -> dict[str, Ed25519PublicKey]:
    paths = list(given) or list(public_keys_in(keys_dir))
    if not paths:
        raise QueryError(
            f"no public key to verify with: none given (--public-key FILE, which `audit-agent keys "
            f"export-public` writes) and none in {keys_dir} (see --keys-dir, --config)"
        )
    try:
        return {key_id: key for path in paths for key_id, key in load_public_keys(path).items()}
    except DigestError as exc:
        raise QueryError(str(exc)) from exc


def _run_record(keys_dir: Path, sink: str) -> RunRecord | None:
    try:
        return read_run_record(keys_dir, sink)
    except PermissionError:
        return None  # keys_dir is the agent's; verifying as someone else, without it
    except DigestError as exc:
        raise QueryError(str(exc)) from exc


def _sinks(data_dir: Path, sink: str, records: dict[str, RunRecord | None]) -> list[str]:
    """The sinks to verify: `sink`, or with `all` every sink with digests (or a run record)."""
    if sink not in (*SINKS, "all"):
        raise QueryError(f"--sink: {sink!r} is not one of file, parquet, all")
    has = [name for name in SINKS if records[name] is not None or numbers(chain_dir(data_dir, name))]
    chosen = has if sink == "all" else [sink] if sink in has else []
    if not chosen:
        which = "any sink" if sink == "all" else f"the {sink} sink"
        raise QueryError(
            f"{data_dir / 'digests'}: no digests of {which} (integrity.enabled is off, or no agent ran here)"
        )
    return chosen
