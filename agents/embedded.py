"""The agent's side of an embedded agent: the seed's settings (shipper.seed) mapped onto AgentConfig.

A service that starts an agent of its own (shipper.embedded) writes its SeedSettings to a file and
runs `python -m auditship.agents run --seed FILE`; `load_seed` reads it. Each sink's part of the
mapping is the sink's own (`from_seed` in agents/sinks/<sink>/config.py); the mapped config then passes
the same checks as an agent.toml. `embedded_agent` starts an agent from an AgentConfig the same way
(the demo, the benchmarks).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from auditship.agents.config import AgentConfig, RetentionConfig, parse_config
from auditship.agents.errors import ConfigError
from auditship.agents.sinks.registry import SinksConfig
from auditship.ondisk.data_layout import data_dir
from shipper.compliance import frameworks, strictest
from shipper.config import AuditConfig
from shipper.embedded import AgentPlaces, EmbeddedAgent
from shipper.seed import SeedSettings, seed_settings


def from_seed(seed: SeedSettings) -> AgentConfig:
    """The agent configuration equivalent to the seed's settings: the sinks its enable_* flags turn on,
    with its destinations' settings winning for their sinks; its retention, at least the floor of its
    compliance presets (a service's requirements raise it, never fail its start); its places, the spool
    named (`spool` in its data directory): it serves its own user's services only."""
    floor = strictest(frameworks(seed.compliance, strict=False))
    days = max(seed.retention_days, floor.floor_days if floor is not None else 0)
    return AgentConfig(
        data_dir=seed.data_dir,
        runtime_dir=seed.runtime_dir,
        spool_dir=str(data_dir(seed.data_dir) / "spool"),
        endpoint=seed.endpoint,
        sinks=SinksConfig.from_seed(seed),
        retention=RetentionConfig(days=days, auto_cleanup=seed.auto_cleanup),
        compliance=list(seed.compliance),
    )


def agent_config(config: AuditConfig) -> AgentConfig:
    """The configuration an embedded agent runs with for an AuditConfig; ValueError for a bad setting."""
    return from_seed(seed_settings(config))


def load_seed(path: Path) -> AgentConfig:
    """Read a SeedSettings file and map it; ConfigError, naming the file, for one that cannot be used."""
    try:
        seed = msgspec.toml.decode(path.read_bytes(), type=SeedSettings)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: not the seed's settings: {exc}") from exc
    # Checked as an agent.toml is: msgspec's constraints act only when it decodes.
    return parse_config(msgspec.toml.encode(from_seed(seed)), source=str(path))


def embedded_agent(config: AgentConfig) -> EmbeddedAgent:
    """An agent started from `config` (written as its agent.toml), as a service starts its own: for this
    user's services, so its spool is named (where `config` puts it) and not warned about."""
    places = AgentPlaces.named(config.data_dir, config.runtime_dir, config.endpoint)
    return EmbeddedAgent(
        places, "--config", msgspec.structs.replace(config, spool_dir=str(config.spool_path))
    )
