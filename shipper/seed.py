"""The seed's settings for an embedded agent, as a plain document the agent reads.

`audit_context` starts an agent of its own configured from the service's AuditConfig (shipper.embedded).
What of the AuditConfig configures that agent (the enable_* flags, the file settings, retention, the
destinations' settings, where it runs) is written as a `SeedSettings` TOML file, and the agent maps it
onto its own config, each sink's part beside that sink (agents/sinks/<sink>/config.py). So the service's
side knows the seed's names only, never the agent's config.

What is wrong with the AuditConfig itself (a retention of 0 days, a SIEM asked for with no endpoint) is
a ValueError here, in the service, where it was written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec

from auditship.ondisk import data_layout
from shipper import endpoint
from shipper.compliance import frameworks
from shipper.config import AuditConfig
from shipper.destinations import DatabaseSettings, FileSettings, SiemSettings, destination_settings


class SeedSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The embedded agent's settings, in the seed's terms (AuditConfig's names, destinations' settings)."""

    data_dir: str
    """Absolute; `AUDITSHIP_DATA_DIR` still wins, as for any agent."""
    runtime_dir: str
    """This user's own runtime directory, never the host agent's."""
    endpoint: str = ""
    enable_file_logging: bool
    enable_console_logging: bool
    enable_database_logging: bool
    enable_siem_logging: bool
    log_file_path: str | None = None
    """Absolute: taken from the service's working directory."""
    max_file_size: int
    max_files: int
    encrypt_sensitive_data: bool
    batch_size: int
    retention_days: int
    auto_cleanup: bool
    compliance: list[str] = []
    """The presets of the service's compliance requirements (shipper.compliance): the agent keeps at
    least their retention floor, and checks PCI's fields."""
    file_destination: FileSettings | None = None
    database_destination: DatabaseSettings | None = None
    siem_destination: SiemSettings | None = None


def seed_settings(config: AuditConfig, compliance: Sequence[str] = ()) -> SeedSettings:
    """What of `config` configures an embedded agent, with the presets `compliance` (a context's
    requirements: other labels are passed over) names; ValueError (or TypeError, from a destination) for
    a value no agent could run with."""
    if config.retention_days <= 0:
        raise ValueError(f"AuditConfig.retention_days: must be positive, got {config.retention_days}")
    destinations = destination_settings(config.destinations)
    if config.enable_siem_logging and destinations.siem is None:
        raise ValueError(
            "AuditConfig: enable_siem_logging: the SIEM sink needs an endpoint; add "
            "SIEMAuditDestination(siem_endpoint=..., api_key=...) to destinations"
        )
    root = Path(config.data_dir) if config.data_dir else data_layout.data_dir()
    return SeedSettings(
        data_dir=str(root.absolute()),
        runtime_dir=str(endpoint.user_runtime_dir()),
        endpoint=config.endpoint or "",
        enable_file_logging=config.enable_file_logging,
        enable_console_logging=config.enable_console_logging,
        enable_database_logging=config.enable_database_logging,
        enable_siem_logging=config.enable_siem_logging,
        log_file_path=str(Path(config.log_file_path).absolute())
        if config.log_file_path is not None
        else None,
        max_file_size=config.max_file_size,
        max_files=config.max_files,
        encrypt_sensitive_data=config.encrypt_sensitive_data,
        batch_size=config.batch_size,
        retention_days=config.retention_days,
        auto_cleanup=config.auto_cleanup,
        compliance=[framework.name for framework in frameworks(compliance, strict=False)],
        file_destination=destinations.file,
        database_destination=destinations.database,
        siem_destination=destinations.siem,
    )
