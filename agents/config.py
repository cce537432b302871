"""The agent's configuration: one TOML file decoded into these Structs.

Unknown keys and wrong types are errors that name the file and the key
(`agent.toml: wal.fsync: expected one of 'always', 'interval', 'never', got 'sometimes'`).
Every default works for a user run without root.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import pwd
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from auditship.agents.errors import ConfigError
from auditship.ondisk.data_layout import DEFAULT_DATA_DIR, data_dir
from shipper import endpoint


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class IntakeConfig(Section):
    max_frame_bytes: int = 1024 * 1024
    """Frames larger than this are rejected (to rejects/) instead of appended."""
    max_message_bytes: int = 256 * 1024 * 1024
    """ZeroMQ drops a larger message, before allocating it, and resets its sender's connection
    (ZMQ_MAXMSGSIZE). A message is an emitter's batch of up to 128 frames: keep this above 128 x
    max_frame_bytes, so that only a message the intake would refuse anyway is dropped."""
    batch_max: int = 1024
    """Frames appended to the WAL per write: this many, or a few more to finish an emitter's batch."""
    confirm_interval_ms: int = 20
    """How often watermarks are published to emitters."""
    spool_scan_interval_s: float = 2.0
    """How often the spool directories are looked at for emitters' spill files."""
    dedupe_horizon_s: float = 7 * 24 * 3600.0
    """How long the intake remembers an emitter it has not heard from, to drop its repeats. A resend
    from an emitter silent for longer (an event it still holds after that) is appended again."""
    sender_rate: float = 50_000.0
    """Frames a second each sender (a uid on ipc, an IP address over TCP) may send; 0 turns the limit
    off. Frames over it are refused and counted (`rate_limited`); the emitter sends them again or
    spools them, so a legitimate burst is delayed, not lost."""
    sender_burst: int = 200_000
    """Frames a sender may send at once above `sender_rate`."""
    identities: dict[str, list[str]] = msgspec.field(default_factory=dict)
    """`[intake.identities]`: a user name or uid -> the service names its processes may send as. When
    given, an event whose `service_name` its sender (the kernel's uid) may not use, or whose sender has
    no kernel identity (TCP), meets `identity_mismatch`."""
    identity_mismatch: Literal["reject", "flag"] = "reject"
    """`reject`: to rejects/ with the reason; `flag`: kept, with `sender.mismatch = true`. Both count
    in `identity_mismatches`."""
    send_hwm: int = 10_000
    receive_hwm: int = 100_000

    def allowed_services(self) -> dict[int, frozenset[str]]:
        """`identities` by uid; raises ValueError naming the key of a user that does not exist."""
        allowed: dict[int, frozenset[str]] = {}
        for who, services in self.identities.items():
            if who.isdigit():
                uid = int(who)
            else:
                try:
                    uid = pwd.getpwnam(who).pw_uid
                except KeyError:
                    raise ValueError(f"identities.{who}: no such user on this host") from None
            allowed[uid] = allowed.get(uid, frozenset()) | frozenset(services)
        return allowed


class WalConfig(Section):
    fsync: Literal["always", "interval", "never"] = "interval"
    fsync_interval_ms: int = 200
    segment_bytes: int = 64 * 1024 * 1024
    max_bytes: int = 2 * 1024 * 1024 * 1024
    """Past this size the intake stops reading (emitters spill) until sinks catch up."""


class RestartConfig(Section):
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    flap_restarts: int = 5
    """A worker that exits this many times within `flap_window_s` is given up on (FATAL)."""
    flap_window_s: float = 60.0


class SupervisorConfig(Section):
    drain_timeout_s: float = 30.0
    """On SIGTERM: how long sinks get to catch up with the WAL before they are killed."""
    restart: RestartConfig = msgspec.field(default_factory=RestartConfig)
    stats_interval_s: float = 1.0


class FileSinkConfig(Section):
    enabled: bool = True
    path: str = "files/audit.jsonl"
    """The current file; relative paths are under data_dir. Closed files sit beside it."""
    line_format: Literal["json", "text"] = msgspec.field(default="json", name="format")
    """`json`: JSON Lines, what `audit-query` reads; `text`: one readable line per event."""
    max_file_size: int = 100 * 1024 * 1024
    """The current file is closed and compressed after the batch that takes it past this size."""
    max_files: int = 10
    """Closed files kept; the oldest beyond this are deleted."""
    compression: Literal["zstd", "gzip", "none"] = "zstd"
    encrypt_sensitive: bool = True
    """False is a deliberate opt-out: `sensitive` values are decrypted and written in plaintext."""
    fsync: bool = True
    """fsync each batch before it counts as delivered. False is faster and still safe against a crash of
    the agent (the kernel keeps the bytes), but a power cut can lose the last batches written."""
    batch_size: int = 1000
    flush_interval_s: float = 0.1
    """How long to wait for a fuller batch; 0 writes whatever has arrived at once. Each batch costs a
    write, an fsync and a cursor commit: at a few thousand events a second, 0.1 s takes a third off the
    sink's CPU per event."""


class ConsoleSinkConfig(Section):
    enabled: bool = False
    """For development: each event on the terminal."""
    line_format: Literal["json", "text"] = msgspec.field(default="text", name="format")
    stream: Literal["stdout", "stderr"] = "stdout"
    batch_size: int = 1000
    flush_interval_s: float = 0.0
    """How long to wait for a fuller batch; 0 writes whatever has arrived at once."""


class ParquetSinkConfig(Section):
    enabled: bool = True
    """Search and statistics (audit-query) read the lake."""
    path: str = "lake"
    """The lake's root; relative paths are under data_dir."""
    flush_interval_s: float = 2.0
    """A part is written at least this often while events arrive."""
    max_rows: int = 10_000
    """...or as soon as this many events are buffered (the sink's batch size). The worker holds a
    batch decoded, about 1.5 KB an event: 100,000 took its peak RSS to ~400 MiB, 10,000 to ~140."""
    compaction: bool = True
    """Merge the small parts of a closed hour into few large ones."""


SQL_DIALECTS = ("postgresql", "mysql", "mariadb", "sqlite")
"""The databases whose conflict-ignoring INSERT the SQL sink knows (agents/sinks/sql/writers.py)."""
# Letters, digits and _: the name is also part of the index names (`ix_<table>_event_type`), which
# must fit PostgreSQL's 63-character identifiers.
_SQL_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")


class SqlSinkConfig(Section):
    enabled: bool = False
    url: str = ""
    """A SQLAlchemy URL; empty means SQLite at data_dir/audit.db."""
    table: str = "audit_events"
    """Created with its indexes when missing."""
    batch_size: int = 1000
    """Events per transaction. Each costs a few round trips, so small batches cap the rate (about 45,000
    rows/s into PostgreSQL at 100, 75,000 at 1,000: `python -m bench sinks --only sql`)."""
    flush_interval_s: float = 1.0
    """How long a partial batch waits for more events."""


class SiemSinkConfig(Section):
    enabled: bool = False
    destination_kind: Literal["generic", "splunk_hec", "elasticsearch"] = msgspec.field(
        default="generic", name="format"
    )
    endpoint: str = ""
    """The collector's URL: the generic JSON endpoint, HEC's base URL, or Elasticsearch's."""
    api_key: str = ""
    """generic: sent in `api_key_header`; splunk_hec: the HEC token; elasticsearch: an API key."""
    api_key_header: str = "X-API-Key"
    payload: Literal["native", "ocsf"] = "native"
    index: str = ""
    source: str = "auditship"
    sourcetype: str = "auditship:event"
    hec_ack: bool = False
    """Splunk indexer acknowledgement: a batch counts as delivered only once acknowledged."""
    hec_ack_timeout_s: float = 30.0
    """How long to wait for a batch's acknowledgement before sending it again."""
    verify_tls: bool = True
    ca_file: str = ""
    allow_insecure: bool = False
    """An http:// endpoint off this host with an api_key is refused (the key would cross the network in
    clear) unless this is true."""
    timeout_s: float = 10.0
    batch_size: int = 50
    max_batch_bytes: int = 1_000_000
    flush_interval_s: float = 1.0


class SyslogSinkConfig(Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 6514
    tls: bool = True
    """TLS on 6514, syslog's TLS port (RFC 5425); plain TCP is an explicit `tls = false` (usually on 514)."""
    verify_tls: bool = True
    ca_file: str = ""
    payload: Literal["json", "cef"] = "json"
    app_name: str = "auditship"
    facility: int = 13
    """13 is `log audit` (RFC 5424)."""
    timeout_s: float = 10.0
    batch_size: int = 500
    flush_interval_s: float = 1.0


class SinksConfig(Section):
    file: FileSinkConfig = msgspec.field(default_factory=FileSinkConfig)
    console: ConsoleSinkConfig = msgspec.field(default_factory=ConsoleSinkConfig)
    parquet: ParquetSinkConfig = msgspec.field(default_factory=ParquetSinkConfig)
    sql: SqlSinkConfig = msgspec.field(default_factory=SqlSinkConfig)
    siem: SiemSinkConfig = msgspec.field(default_factory=SiemSinkConfig)
    syslog: SyslogSinkConfig = msgspec.field(default_factory=SyslogSinkConfig)


class RetentionConfig(Section):
    days: int = 365
    """Lake partitions, closed files, rejects and dead letters older than this are removed."""
    auto_cleanup: bool = True
    """The agent applies `days` at start and then daily; off, only `audit-query retention` removes."""


class AgentConfig(Section):
    data_dir: str = DEFAULT_DATA_DIR
    """WAL, files, rejects and keys live here. `AUDITSHIP_DATA_DIR` overrides."""
    runtime_dir: str = ""
    """Sockets live here; empty means the default (shipper.endpoint). `AUDITSHIP_RUNTIME_DIR` overrides."""
    spool_dir: str = ""
    """Where emitters spill and find the key to seal to; outside data_dir, so that services in the
    agent's group can write it and it does not fill up with the WAL. Empty means /var/spool/auditship
    for the installed agent (runtime_dir /run/auditship), else `spool` under data_dir.
    `AUDITSHIP_SPOOL_DIR` overrides."""
    endpoint: str = ""
    """The intake endpoint; empty means ipc in runtime_dir. `AUDITSHIP_ENDPOINT` overrides."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    intake: IntakeConfig = msgspec.field(default_factory=IntakeConfig)
    wal: WalConfig = msgspec.field(default_factory=WalConfig)
    supervisor: SupervisorConfig = msgspec.field(default_factory=SupervisorConfig)
    sinks: SinksConfig = msgspec.field(default_factory=SinksConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)

    @property
    def data_path(self) -> Path:
        return data_dir(self.data_dir).absolute()

    @property
    def runtime_path(self) -> Path:
        if os.environ.get("AUDITSHIP_RUNTIME_DIR") or not self.runtime_dir:
            return endpoint.runtime_dir().absolute()
        return Path(self.runtime_dir).absolute()

    @property
    def spool_path(self) -> Path:
        explicit = os.environ.get("AUDITSHIP_SPOOL_DIR") or self.spool_dir
        if explicit:
            return Path(explicit).absolute()
        if self.runtime_path == endpoint.SYSTEM_RUNTIME_DIR:
            return endpoint.SYSTEM_SPOOL_DIR
        return self.data_path / "spool"

    @property
    def intake_endpoint(self) -> str:
        return (
            os.environ.get("AUDITSHIP_ENDPOINT")
            or self.endpoint
            or endpoint.intake_endpoint(self.runtime_path)
        )

    def enabled_sinks(self) -> list[str]:
        return [name for name in SinksConfig.__struct_fields__ if getattr(self.sinks, name).enabled]


def load_config(path: Path | None) -> AgentConfig:
    """Read and validate a TOML config file; no path means every default."""
    if path is None:
        return AgentConfig()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_config(raw, source=str(path))


def parse_config(raw: bytes | str, source: str = "<config>") -> AgentConfig:
    try:
        config = msgspec.toml.decode(raw, type=AgentConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_readable(str(exc))}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    _check_values(config, source)
    return config


def _readable(message: str) -> str:
    """msgspec says `Object contains unknown field `fsycn` - at `$.wal``; say `wal.fsycn: unknown key;
    did you mean 'fsync'?`, the suggestion being the section's closest key, when one is close."""
    text, _, where = message.partition(" - at `")
    where = where.rstrip("`").removeprefix("$").lstrip(".")
    if text.startswith("Object contains unknown field `"):
        key = text.split("`")[1]
        close = difflib.get_close_matches(key, _section_keys(where), n=1)
        suggestion = f"; did you mean {close[0]!r}?" if close else ""
        return f"{where + '.' if where else ''}{key}: unknown key{suggestion}"
    return f"{where or '(top level)'}: {text}"


def _section_keys(where: str) -> tuple[str, ...]:
    """The keys of the section at a dotted path (`sinks.file`), read from the Structs: the names a TOML
    file uses (`format`), which are not always the attributes' (`line_format`)."""
    section: type[msgspec.Struct] = AgentConfig
    for name in filter(None, where.split(".")):
        section = next(f.type for f in msgspec.structs.fields(section) if f.encode_name == name)
    return section.__struct_encode_fields__


def _check_values(config: AgentConfig, source: str) -> None:
    positive = {
        "intake.max_frame_bytes": config.intake.max_frame_bytes,
        "intake.max_message_bytes": config.intake.max_message_bytes,
        "intake.batch_max": config.intake.batch_max,
        "wal.segment_bytes": config.wal.segment_bytes,
        "wal.max_bytes": config.wal.max_bytes,
        "sinks.file.max_file_size": config.sinks.file.max_file_size,
        "sinks.file.max_files": config.sinks.file.max_files,
        "sinks.file.batch_size": config.sinks.file.batch_size,
        "sinks.console.batch_size": config.sinks.console.batch_size,
        "sinks.siem.batch_size": config.sinks.siem.batch_size,
        "sinks.siem.max_batch_bytes": config.sinks.siem.max_batch_bytes,
        "sinks.syslog.batch_size": config.sinks.syslog.batch_size,
        "sinks.sql.batch_size": config.sinks.sql.batch_size,
        "sinks.parquet.max_rows": config.sinks.parquet.max_rows,
    }
    positive["retention.days"] = config.retention.days
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{source}: {key}: must be positive, got {value}")
    intake = config.intake
    if intake.sender_rate < 0:
        raise ConfigError(f"{source}: intake.sender_rate: must be 0 (off) or more, got {intake.sender_rate}")
    if intake.sender_burst < 1:
        raise ConfigError(f"{source}: intake.sender_burst: must be positive, got {intake.sender_burst}")
    try:
        intake.allowed_services()
    except ValueError as exc:
        raise ConfigError(f"{source}: intake.{exc}") from exc
    if intake.max_message_bytes < intake.max_frame_bytes:
        raise ConfigError(
            f"{source}: intake.max_message_bytes: must be at least intake.max_frame_bytes "
            f"({intake.max_frame_bytes}), got {intake.max_message_bytes}"
        )
    siem = config.sinks.siem
    if siem.enabled and not siem.endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"{source}: sinks.siem.endpoint: expected an http(s) URL, got {siem.endpoint!r}")
    if siem.enabled and siem.api_key and not siem.allow_insecure and _cleartext_off_host(siem.endpoint):
        raise ConfigError(
            f"{source}: sinks.siem.endpoint: an http:// endpoint off this host would carry "
            "sinks.siem.api_key in clear; use https://, or set sinks.siem.allow_insecure = true"
        )
    if not 0 <= (facility := config.sinks.syslog.facility) <= 23:
        raise ConfigError(f"{source}: sinks.syslog.facility: must be 0..23, got {facility}")
    _check_sql(config.sinks.sql, source)
    if config.endpoint:
        try:
            endpoint.confirm_endpoint(config.endpoint)
        except ValueError as exc:
            raise ConfigError(f"{source}: endpoint: {exc}") from exc


def _cleartext_off_host(url: str) -> bool:
    """http:// to anything but this host's loopback (traffic that never leaves the host)."""
    parsed = urlsplit(url)
    if parsed.scheme != "http":
        return False
    host = parsed.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name: it may resolve anywhere


def _check_sql(sql: SqlSinkConfig, source: str) -> None:
    if not _SQL_TABLE.fullmatch(sql.table):
        raise ConfigError(
            f"{source}: sinks.sql.table: expected 1 to 48 letters, digits or _, not starting with a "
            f"digit, got {sql.table!r}"
        )
    if not sql.url:
        return
    # Only the agent has SQLAlchemy, and only a SQL sink with a URL needs it here.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        dialect = make_url(sql.url).get_dialect()
    except ArgumentError as exc:  # its message does not repeat the URL, which may hold a password
        raise ConfigError(f"{source}: sinks.sql.url: {exc}") from exc
    if dialect.name not in SQL_DIALECTS:
        raise ConfigError(
            f"{source}: sinks.sql.url: the SQL sink supports {', '.join(SQL_DIALECTS)}, not {dialect.name!r}"
        )
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise ConfigError(
            f"{source}: sinks.sql.url: its driver {dialect.driver!r} is not installed ({exc}); install it "
            "or name one that is, as in postgresql+psycopg:// or mysql+pymysql://"
        ) from exc
