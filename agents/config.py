"""The agent's configuration: one TOML file decoded into these Structs, each sink's section beside
its sink (agents/sinks/<sink>/config.py, gathered by agents/sinks/registry.py).

Unknown keys, wrong types and values out of range are errors that name the file and the key
(`agent.toml: wal.fsync: expected one of 'always', 'interval', 'never', got 'sometimes'`,
`agent.toml: sinks.file.max_files: must be positive, got 0`). Every default works for a user run
without root.
"""

from __future__ import annotations

import difflib
import os
import pwd
import re
from pathlib import Path
from typing import Literal

import msgspec

from auditship.agents.detect.config import DetectConfig
from auditship.agents.errors import ConfigError
from auditship.agents.section import Positive, Section
from auditship.agents.sinks.registry import SINKS, SinksConfig
from auditship.agents.subjects.config import SubjectsConfig
from auditship.ondisk.data_layout import DEFAULT_DATA_DIR, data_dir
from shipper import endpoint
from shipper.compliance import Framework, check_retention, frameworks

CURVE_KEY_PREFIX = "key:"
"""How `[intake.identities]` names a CURVE client key rather than a user: its events come over TCP."""


class IntakeConfig(Section):
    max_frame_bytes: Positive = 1024 * 1024
    """Frames larger than this are rejected (to rejects/) instead of appended."""
    max_message_bytes: Positive = 8 * 1024 * 1024
    """ZeroMQ drops a larger message, before allocating it, and resets its sender's connection
    (ZMQ_MAXMSGSIZE). A message is an emitter's batch: up to 128 frames and 4 MiB (shipper.wire's
    BATCH_BYTES) plus one frame; keep this above 4 MiB + max_frame_bytes, so that only a message no
    emitter sends is dropped (a flood's: one 122 MiB message once took the intake from 36 to 413 MB)."""
    batch_max: Positive = 1024
    """Frames appended to the WAL per write: this many, or a few more to finish an emitter's batch."""
    confirm_interval_ms: int = 20
    """How often watermarks are published to emitters."""
    spool_scan_interval_s: float = 2.0
    """How often the spool directories are looked at for emitters' spill files."""
    max_spool_file_bytes: Positive = 8 * 1024**3
    """A spool entry larger than this is moved to quarantine unread (logged, counted in
    `spool_quarantined`): what one entry may cost the intake in time, since files are read a record at
    a time and their size costs no memory. An emitter's overflow file is at most 16 MiB; its file in
    the spool grows only while the agent does not take it (stopped, or paused on a full WAL), about
    1.4 GB an hour at 1,000 events of 400 bytes a second. A file quarantined for its size is ingested
    once this is raised and the file is moved back into the spool under a name ending in `.spool`."""
    dedupe_horizon_s: float = 7 * 24 * 3600.0
    """How long the intake remembers an emitter it has not heard from, to drop its repeats. A resend
    from an emitter silent for longer (an event it still holds after that) is appended again."""
    sender_rate: float = 50_000.0
    """Frames a second each sender (a uid on ipc, an IP address over TCP) may send; 0 turns the limit
    off. Frames over it are refused and counted (`rate_limited`); the emitter sends them again or
    spools them, so a legitimate burst is delayed, not lost."""
    sender_burst: Positive = 200_000
    """Frames a sender may send at once above `sender_rate`."""
    sender_byte_rate: float = 64 * 1024 * 1024
    """Bytes of frames a second each sender may send; 0 turns this limit off. Frames over it are refused
    as those over `sender_rate` are."""
    sender_byte_burst: Positive = 256 * 1024 * 1024
    """Bytes a sender may send at once above `sender_byte_rate`; at least `max_frame_bytes`, or a frame
    of that size could never pass."""
    identities: dict[str, list[str]] = msgspec.field(default_factory=dict)
    """`[intake.identities]`: a user name or uid, or `key:NAME` for a CURVE client key (TCP) -> the
    service names its processes may send as. When given, an event whose `service_name` its sender (the
    kernel's uid, or the key it connected with) may not use, or whose sender has no identity (plain
    TCP), meets `identity_mismatch`."""
    identity_mismatch: Literal["reject", "flag"] = "reject"
    """`reject`: to rejects/ with the reason; `flag`: kept, with `sender.mismatch = true`. Both count
    in `identity_mismatches`."""
    send_hwm: int = 10_000
    receive_hwm: int = 100_000
    curve: bool = True
    """On a tcp:// endpoint: CurveZMQ, the agent's key pair and only the client keys in `curve_dir`'s
    allow-list (`audit-agent keys`). `false` is allowed on a loopback address only, where the events
    stay on this host; a plain one beyond it is a config error. Ignored on ipc, where the kernel names
    the sender."""
    curve_dir: str = ""
    """The CURVE keys: the server key pair and `clients/`, the allow-list; empty means `keys/curve` in
    the data directory (0700)."""

    def check(self, key: str) -> None:
        if self.max_message_bytes < self.max_frame_bytes:
            raise ValueError(
                f"{key}.max_message_bytes: must be at least {key}.max_frame_bytes ({self.max_frame_bytes}), "
                f"got {self.max_message_bytes}"
            )
        if self.sender_rate < 0:
            raise ValueError(f"{key}.sender_rate: must be 0 (off) or more, got {self.sender_rate}")
        if self.sender_byte_rate < 0:
            raise ValueError(f"{key}.sender_byte_rate: must be 0 (off) or more, got {self.sender_byte_rate}")
        if self.sender_byte_burst < self.max_frame_bytes:
            raise ValueError(
                f"{key}.sender_byte_burst: must be at least {key}.max_frame_bytes ({self.max_frame_bytes}), "
                f"got {self.sender_byte_burst}"
            )
        try:
            self.allowed_services()
        except ValueError as exc:
            raise ValueError(f"{key}.{exc}") from exc

    def allowed_services(self) -> dict[int | str, frozenset[str]]:
        """`identities` by uid, and by CURVE key name (`key:NAME`, a str); raises ValueError naming the
        key of a user that does not exist."""
        allowed: dict[int | str, frozenset[str]] = {}
        for who, services in self.identities.items():
            principal: int | str
            if who.startswith(CURVE_KEY_PREFIX):
                principal = who.removeprefix(CURVE_KEY_PREFIX)
            elif who.isdigit():
                principal = int(who)
            else:
                try:
                    principal = pwd.getpwnam(who).pw_uid
                except KeyError:
                    raise ValueError(f"identities.{who}: no such user on this host") from None
            allowed[principal] = allowed.get(principal, frozenset()) | frozenset(services)
        return allowed


class WalConfig(Section):
    fsync: Literal["always", "interval", "never"] = "interval"
    fsync_interval_ms: int = 200
    segment_bytes: Positive = 64 * 1024 * 1024
    max_bytes: Positive = 2 * 1024 * 1024 * 1024
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


class RetentionConfig(Section):
    days: Positive = 365
    """Lake partitions, closed files, rejects and dead letters older than this are removed."""
    auto_cleanup: bool = True
    """The agent applies `days` at start and then daily; off, only `audit-query retention` removes."""


class IntegrityConfig(Section):
    enabled: bool = True
    """Signed, chained digests of the file sink's files and the lake's parts, in data_dir/digests/,
    which `audit-query verify` checks (agents/integrity/)."""
    digest_interval_s: float = 300.0
    """What a sink wrote waits at most this long for a digest (the current file's growth, parts)."""
    digest_min_interval_s: float = 30.0
    """A part written or a file rotated asks for a digest at once, but a sink writes one at most this
    often for them: under steady load one digest covers the parts of many batches. Removals (retention,
    compaction, max_files), a gap in the sequence and a shutdown are recorded at once."""

    def check(self, key: str) -> None:
        if self.digest_interval_s <= 0:
            raise ValueError(f"{key}.digest_interval_s: must be positive, got {self.digest_interval_s}")
        if not 0 <= self.digest_min_interval_s <= self.digest_interval_s:
            raise ValueError(
                f"{key}.digest_min_interval_s: must be between 0 and {key}.digest_interval_s "
                f"({self.digest_interval_s}), got {self.digest_min_interval_s}"
            )


MAX_ENCRYPTIONS_PER_KEY = 1 << 32
"""AES-GCM with random 96-bit nonces: past this many values under one key, a repeated nonce becomes
too likely (NIST SP 800-38D). `keys.rotate_after_encryptions` stays below it."""


class KeysConfig(Section):
    """When the agent rotates the field key and the signing key by itself (`audit-agent keys rotate` does
    it by hand)."""

    rotate_after_encryptions: Positive = 1 << 30
    """A new field key before the active one has sealed more values than this (counted in keys_dir,
    so a restart does not reset it); at most 2^32."""
    rotate_after_days: Positive = 90
    """A new field key once the active one is this many days old (counted at the next value sealed)."""
    signing_rotate_after_days: Positive = 365
    """A new signing key for the digests once the active one is this many days old (the supervisor looks
    once an hour); auditors then need the new public key (`keys export-public`)."""

    def check(self, key: str) -> None:
        if self.rotate_after_encryptions > MAX_ENCRYPTIONS_PER_KEY:
            raise ValueError(
                f"{key}.rotate_after_encryptions: must be at most 2^32 ({MAX_ENCRYPTIONS_PER_KEY}), the "
                f"bound of AES-GCM with random nonces, got {self.rotate_after_encryptions}"
            )


class EncryptionConfig(Section):
    """What the intake adds to the envelopes of `sensitive` values (ondisk/envelope.py)."""

    blind_index: list[str] = []
    """The sensitive fields whose envelope carries a blind index (ondisk/blind.py), a keyed hash of the
    normalised value, so that `audit-query search --sensitive NAME=VALUE` finds their events without
    decrypting anything. Its key is made in keys_dir at the first start with a field named here."""

    def check(self, key: str) -> None:
        for name in self.blind_index:
            if not name or not name.isprintable():
                raise ValueError(f"{key}.blind_index: {name!r} is not a field name")


KEYS_DIR_NAME = "keys"
"""The keys directory beside the config file, when `keys_dir` is not given."""


def default_keys_dir(data_path: Path, config_file: Path | None = None) -> Path:
    """Where the keys are when `keys_dir` is not given: `keys/` beside the config file, else (no config
    file, or one inside the data directory: an embedded agent's) `<data_dir>-keys`, beside the data
    directory. Never inside it: a backup or a reader of the data must not get the keys with it."""
    if config_file is not None:
        beside = config_file.absolute().parent
        if not beside.is_relative_to(data_path):
            return beside / KEYS_DIR_NAME
    return data_path.with_name(f"{data_path.name}-{KEYS_DIR_NAME}")


class AgentConfig(Section):
    data_dir: str = DEFAULT_DATA_DIR
    """WAL, files, lake, digests and rejects live here. `AUDITSHIP_DATA_DIR` overrides."""
    keys_dir: str = ""
    """The field keys, the spool key pair, the signing key of digests and the digests' run record: a
    directory apart from data_dir (0700), so that a backup or a reader of the data can neither decrypt
    it nor forge its digests. Empty means `keys/` beside the config file, else `<data_dir>-keys`."""
    runtime_dir: str = ""
    """Sockets live here; empty means the default (shipper.endpoint). `AUDITSHIP_RUNTIME_DIR` overrides."""
    spool_dir: str = ""
    """Where emitters spill and find the key to seal to; outside data_dir, so that services in the
    agent's group can write it and it does not fill up with the WAL. Empty means /var/spool/auditship
    for the installed agent (runtime_dir /run/auditship), else `spool` under data_dir, which only the
    agent's own user reaches (`spool_warning` says so at start). `AUDITSHIP_SPOOL_DIR` overrides."""
    endpoint: str = ""
    """The intake endpoint; empty means ipc in runtime_dir. `AUDITSHIP_ENDPOINT` overrides."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    intake: IntakeConfig = msgspec.field(default_factory=IntakeConfig)
    wal: WalConfig = msgspec.field(default_factory=WalConfig)
    supervisor: SupervisorConfig = msgspec.field(default_factory=SupervisorConfig)
    sinks: SinksConfig = msgspec.field(default_factory=SinksConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    detect: DetectConfig = msgspec.field(default_factory=DetectConfig)
    integrity: IntegrityConfig = msgspec.field(default_factory=IntegrityConfig)
    keys: KeysConfig = msgspec.field(default_factory=KeysConfig)
    encryption: EncryptionConfig = msgspec.field(default_factory=EncryptionConfig)
    subjects: SubjectsConfig = msgspec.field(default_factory=SubjectsConfig)
    compliance: list[str] = msgspec.field(default_factory=list)
    """Compliance presets, some of "sox", "hipaa", "gdpr", "pci" (shipper/compliance.py): retention.days
    must reach the strictest floor (SOX 7 years, HIPAA 6, PCI 1), and with "pci" the intake flags every
    event that lacks a field PCI DSS 10.2.2 requires (`details.compliance_missing`)."""

    @property
    def frameworks(self) -> tuple[Framework, ...]:
        return frameworks(self.compliance)

    @property
    def data_path(self) -> Path:
        return data_dir(self.data_dir)

    @property
    def keys_path(self) -> Path:
        return Path(self.keys_dir).absolute() if self.keys_dir else default_keys_dir(self.data_path)

    @property
    def runtime_path(self) -> Path:
        return endpoint.agent_runtime_dir(self.runtime_dir)

    @property
    def spool_path(self) -> Path:
        named = self._named_spool()
        if named is not None:
            return named
        if self.runtime_path == endpoint.SYSTEM_RUNTIME_DIR:
            return endpoint.SYSTEM_SPOOL_DIR
        return self.data_path / "spool"

    def _named_spool(self) -> Path | None:
        explicit = os.environ.get("AUDITSHIP_SPOOL_DIR") or self.spool_dir
        return Path(explicit).absolute() if explicit else None

    def spool_warning(self) -> str | None:
        """What to tell at start when the spool is the fallback under data_dir (no spool_dir, and a
        runtime_dir other than /run/auditship): the data directory is the agent's alone (0700), so a
        service of another user, which reaches the socket through the agent's group, could not spill
        there while the agent is down. An agent that serves only its own user names its spool
        (shipper.embedded's agents do), and is not told."""
        if self._named_spool() is not None or self.runtime_path == endpoint.SYSTEM_RUNTIME_DIR:
            return None
        return (
            f"spool_dir is not set and runtime_dir is {self.runtime_path}, not "
            f"{endpoint.SYSTEM_RUNTIME_DIR}, so the spool is {self.spool_path}, inside the data directory, "
            "which only the agent's user may enter: services running as other users (in the agent's "
            "group) cannot spill there while the agent is down, and hold their events in memory "
            "instead, up to a bound. Set spool_dir to a directory outside data_dir that they reach "
            f'(spool_dir = "{endpoint.SYSTEM_SPOOL_DIR}", which deploy/systemd/auditship.tmpfiles makes '
            "3730 for the group), or to this one to say that every service runs as the agent's user"
        )

    @property
    def intake_endpoint(self) -> str:
        return endpoint.agent_intake_endpoint(self.endpoint, self.runtime_path)

    @property
    def curve_path(self) -> Path:
        configured = self.intake.curve_dir
        return Path(configured).absolute() if configured else self.data_path / "keys" / "curve"

    @property
    def uses_curve(self) -> bool:
        """Whether the intake binds TCP with CURVE (it never does on ipc)."""
        return self.intake.curve and self.intake_endpoint.startswith("tcp://")

    def check_transport(self) -> None:
        """ValueError when the intake would take events in clear from beyond this host."""
        bound = self.intake_endpoint
        if bound.startswith("tcp://") and not self.intake.curve and not endpoint.is_loopback(bound):
            raise ValueError(
                f"intake.curve: false is allowed on a loopback endpoint only, and {bound} is not: events "
                "would cross the network in clear, from anyone who reaches it; keep intake.curve = true "
                "(`audit-agent keys init`) or bind 127.0.0.1"
            )

    def enabled_sinks(self) -> list[str]:
        return [name for name in SINKS if getattr(self.sinks, name).enabled]

    def wal_readers(self) -> list[str]:
        """Whose cursors hold the WAL's segments: the enabled sinks', and the detector's when it runs."""
        return [*self.enabled_sinks(), *(["detect"] if self.detect.enabled else [])]


def load_config(path: Path | None) -> AgentConfig:
    """Read and validate a TOML config file; no path means every default. Without `keys_dir`, the
    config's keys directory is the one beside the file (`default_keys_dir`), made explicit here."""
    if path is None:
        return AgentConfig()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    config = parse_config(raw, source=str(path))
    if not config.keys_dir:
        config.keys_dir = str(default_keys_dir(config.data_path, path))
    return config


def parse_config(raw: bytes | str, source: str = "<config>") -> AgentConfig:
    try:
        config = msgspec.toml.decode(raw, type=AgentConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_readable(str(exc), raw)}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        _check_values(config)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    return config


def _readable(message: str, raw: bytes | str) -> str:
    """msgspec says `Object contains unknown field `fsycn` - at `$.wal``; say `wal.fsycn: unknown key;
    did you mean 'fsync'?`, the suggestion being the section's closest key, when one is close. And for
    ``Expected `int` >= 1 - at `$.sinks.file.max_files``, say `sinks.file.max_files: must be positive,
    got 0`: the range as the key's constraint states it, and the value given."""
    text, _, where = message.partition(" - at `")
    where = where.rstrip("`").removeprefix("$").lstrip(".")
    if text.startswith("Object contains unknown field `"):
        key = text.split("`")[1]
        section = _type_at(where)
        keys = (
            [f.encode_name for f in section.fields] if isinstance(section, msgspec.inspect.StructType) else []
        )
        close = difflib.get_close_matches(key, keys, n=1)
        suggestion = f"; did you mean {close[0]!r}?" if close else ""
        return f"{where + '.' if where else ''}{key}: unknown key{suggestion}"
    if _OUT_OF_RANGE.match(text) and (bounds := _bounds(_type_at(where))) is not None:
        return f"{where}: must be {bounds}, got {_given(raw, where)}"
    return f"{where or '(top level)'}: {text}"


_OUT_OF_RANGE = re.compile(r"Expected `int` [<>]=? ")


def _type_at(where: str) -> msgspec.inspect.Type:
    """The type of the key (or section) at a dotted path (`sinks.file`), read from the Structs."""
    found = msgspec.inspect.type_info(AgentConfig)
    for name in filter(None, where.split(".")):
        assert isinstance(found, msgspec.inspect.StructType), where  # msgspec named a key inside it
        found = next(f.type for f in found.fields if f.encode_name == name)
    return found


def _bounds(constrained: msgspec.inspect.Type) -> str | None:
    if not isinstance(constrained, msgspec.inspect.IntType):
        return None
    if constrained.gt == 0 and constrained.le is None:
        return "positive"
    if constrained.ge is not None and constrained.le is not None:
        return f"{constrained.ge}..{constrained.le}"
    return None


def _given(raw: bytes | str, where: str) -> object:
    """The value the TOML gives at a dotted path (which msgspec's message leaves out)."""
    value: object = msgspec.toml.decode(raw)
    for name in where.split("."):
        assert isinstance(value, dict), where  # msgspec found a value there
        value = value[name]
    return value


def _check_values(config: AgentConfig) -> None:
    """What constraints cannot say: each section's own check(), and the endpoint; ValueError."""
    for name in AgentConfig.__struct_fields__:
        if isinstance(section := getattr(config, name), Section):
            section.check(name)
    if config.endpoint:
        try:
            endpoint.confirm_endpoint(config.endpoint)
        except ValueError as exc:
            raise ValueError(f"endpoint: {exc}") from exc
    config.check_transport()
    try:
        chosen = frameworks(config.compliance)
    except ValueError as exc:
        raise ValueError(f"compliance: {exc}") from exc
    check_retention(config.retention.days, chosen, "retention.days")
