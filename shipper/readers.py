"""The read-back seam: how `AuditLogger.search_events`, `get_audit_statistics`, `cleanup_old_events`,
`detect_anomalies`, `compliance_report` and `verify` reach the agent's lake although shipper, below the
agent and audit-query, never imports them.

shipper names only the `LakeReader` protocol. The implementation is found at first use through the entry
point `lake` of the group `auditship.readers`, which this distribution declares as `auditship.query.api`
(pyproject.toml). It reads with DuckDB, which comes with the agent extra: a service that only emits
imports shipper without it, and the read-back methods then raise RuntimeError saying what to install.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, Unpack, cast

from shipper.config import AuditConfig
from shipper.event import AuditEvent
from shipper.search_filters import SearchFilters

GROUP = "auditship.readers"
NAME = "lake"


class LakeReader(Protocol):
    """What reads the lake under a data directory (None: $AUDITSHIP_DATA_DIR, else ./auditship-data)."""

    def search_events(
        self, data_dir: Path | None, **filters: Unpack[SearchFilters]
    ) -> AsyncIterator[AuditEvent]: ...

    async def get_audit_statistics(
        self, data_dir: Path | None, start_time: datetime | None = None, end_time: datetime | None = None
    ) -> Mapping[str, Any]: ...

    async def cleanup_old_events(
        self,
        data_dir: Path | None,
        older_than_days: int,
        compliance: list[str] | None = None,
        config: AuditConfig | None = None,
    ) -> list[Any]: ...

    async def compliance_report(
        self,
        data_dir: Path | None,
        framework: str,
        start_time: datetime | None,
        end_time: datetime | None,
        config_file: Path | None,
    ) -> Mapping[str, Any]: ...

    async def detect_anomalies(
        self,
        data_dir: Path | None,
        start_time: datetime | None,
        end_time: datetime | None,
        rules: list[str],
        config_file: Path | None,
    ) -> list[Mapping[str, Any]]: ...

    async def verify(
        self,
        data_dir: Path | None,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        sink: str = "all",
        public_key: Path | None = None,
        keys_dir: Path | None = None,
    ) -> Mapping[str, Any]: ...

    def export_subject(
        self,
        data_dir: Path | None,
        subject: str,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        decrypt: bool = False,
        keys_dir: Path | None = None,
        config_file: Path | None = None,
    ) -> AsyncIterator[AuditEvent]: ...


def _missing(reason: object) -> RuntimeError:
    return RuntimeError(
        "search_events, get_audit_statistics, cleanup_old_events, detect_anomalies, compliance_report, "
        "verify and export_subject read the "
        "agent's lake with DuckDB, "
        f"which comes with the agent extra: pip install 'auditship[agent]' ({reason})"
    )


@functools.cache  # a failure is not cached: installing the extra later is seen at the next call
def lake_reader() -> LakeReader:
    """The installed lake reader; RuntimeError when there is none or it cannot be imported."""
    # Imported here: importlib.metadata loads a dozen modules that `import shipper` does not need.
    from importlib.metadata import entry_points

    found = next(iter(entry_points(group=GROUP, name=NAME)), None)
    if found is None:
        raise _missing(f"no entry point {NAME!r} in group {GROUP!r}: is auditship installed?")
    try:
        return cast(LakeReader, found.load())
    except ImportError as exc:
        raise _missing(exc) from exc
