"""What a service tells its audit logger: `AuditConfig` (how to log) and `AuditContext` (who logs).

Both keep the seed API's names. `AuditConfig` is mutable, as the seed sets attributes one by one after
construction, but it refuses an attribute it does not have: `config.enable_fle_logging = True` raises
an `AttributeError` that names the misspelt attribute and the close matches, because a silently
ignored typo in audit configuration is a compliance bug that nobody notices until an audit.

An `AuditLogger` reads its configuration once, when it is built; changing either object afterwards
does not change a logger that already exists.
"""

from __future__ import annotations

import difflib
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipper.event import AuditEventType, AuditSeverity


@dataclass(slots=True, kw_only=True)
class AuditConfig:
    """How a service's audit events are filtered and delivered, and where its embedded agent sends them.

    The logger reads `min_severity`, `excluded_event_types`, `fail_closed`, `async_logging` and
    `delivery_timeout_seconds`; the emitter `flush_interval_seconds`; `audit_context` reads `endpoint`
    and `embedded`. The sink, batch and retention settings configure the embedded agent only: where
    the host runs an agent, its own config file decides them.
    """

    # Destinations (sinks of the embedded agent).
    enable_file_logging: bool = True
    enable_database_logging: bool = False
    enable_console_logging: bool = False
    enable_siem_logging: bool = False

    # File sink. None means the agent's default, `files/audit.jsonl` under the data directory; a
    # relative path is taken from the service's working directory, as the seed's users expect.
    log_file_path: Path | None = None
    max_file_size: int = 100 * 1024 * 1024
    max_files: int = 10

    # Security: sensitive fields are encrypted by the agent before they reach any sink.
    encrypt_sensitive_data: bool = True

    # Performance. async_logging=False makes every logging call an acknowledged emit (as fail_closed).
    async_logging: bool = True
    batch_size: int = 100
    # How long an event waits in the service for a fuller batch (the emitter's linger); at most 1 s,
    # the longest an event may wait in a service's memory.
    flush_interval_seconds: float = 0.05

    # Acknowledged delivery: each logging call returns only once the agent has the event in its WAL,
    # synced, and raises AuditDeliveryError after delivery_timeout_seconds without that.
    fail_closed: bool = False
    delivery_timeout_seconds: float = 5.0

    # Retention, applied by the embedded agent (the host's agent has its own, in its config file).
    retention_days: int = 365
    auto_cleanup: bool = True

    # Filtering, compiled into the logger when it is built. Every event filtered out is counted.
    min_severity: AuditSeverity = AuditSeverity.INFO
    excluded_event_types: list[AuditEventType] = field(default_factory=list)

    # Where events go. None means the default agent endpoint (`AUDITSHIP_ENDPOINT`, else the ipc
    # socket in the runtime directory; see shipper.endpoint).
    endpoint: str | None = None
    # Whether audit_context runs an agent of its own: "auto" only on a machine with no agent installed
    # and none answering (a laptop, a test); "on" always; "off" never (events wait in the spool).
    embedded: Literal["auto", "on", "off"] = "auto"
    # The embedded agent's data directory; None means its default (`AUDITSHIP_DATA_DIR`, else
    # `./auditship-data`).
    data_dir: Path | None = None
    # Destination objects; empty means the sinks chosen by the enable_* flags.
    destinations: list[Any] = field(default_factory=list)

    # Defined only at run time: mypy then still reports a misspelt attribute statically, which it
    # would stop doing if it saw a __setattr__ that accepts any name.
    if not TYPE_CHECKING:

        def __setattr__(self, name: str, value: object) -> None:
            if name not in _SETTINGS:
                raise AttributeError(_unknown_setting(name), name=name, obj=self)
            object.__setattr__(self, name, value)


_SETTINGS = frozenset(f.name for f in fields(AuditConfig))


def _unknown_setting(name: str) -> str:
    close = difflib.get_close_matches(name, sorted(_SETTINGS), n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"AuditConfig has no setting {name!r}{hint}"


@dataclass(frozen=True, slots=True)
class AuditContext:
    """The service that logs: stamped on every event it emits.

    `compliance_requirements` (such as "SOX", "GDPR") become each event's `compliance` tags.
    """

    service_name: str
    service_version: str | None = None
    environment: str | None = None
    node_id: str = field(default_factory=socket.gethostname)
    compliance_requirements: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.service_name:
            raise ValueError("AuditContext: service_name must be a non-empty string")

    def event_fields(self) -> dict[str, str | None]:
        """The service fields of an AuditEvent, as keyword arguments."""
        return {
            "service_name": self.service_name,
            "service_version": self.service_version,
            "environment": self.environment,
            "node_id": self.node_id,
        }
