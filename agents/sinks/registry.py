"""Which sinks exist: one field of `SinksConfig` each, its config section from the sink's own folder.

A sink `<name>` lives in agents/sinks/<name>/: `config.py` (its section of agent.toml, its checks, what
the seed's settings make of it) and `sink.py` (the sink and `build(config) -> BuiltSink`). The registry
imports only the light config modules; a sink module is imported only by the worker (or command) that
uses it (runner.build_sink), so the file sink's worker never loads httpx, nor the SIEM's worker
SQLAlchemy.
"""

from __future__ import annotations

import msgspec

from auditship.agents.section import Section
from auditship.agents.sinks.console.config import ConsoleSinkConfig
from auditship.agents.sinks.file.config import FileSinkConfig
from auditship.agents.sinks.parquet.config import ParquetSinkConfig
from auditship.agents.sinks.siem.config import SiemSinkConfig
from auditship.agents.sinks.sql.config import SqlSinkConfig
from auditship.agents.sinks.syslog.config import SyslogSinkConfig
from shipper.seed import SeedSettings


class SinksConfig(Section):
    file: FileSinkConfig = msgspec.field(default_factory=FileSinkConfig)
    console: ConsoleSinkConfig = msgspec.field(default_factory=ConsoleSinkConfig)
    parquet: ParquetSinkConfig = msgspec.field(default_factory=ParquetSinkConfig)
    sql: SqlSinkConfig = msgspec.field(default_factory=SqlSinkConfig)
    siem: SiemSinkConfig = msgspec.field(default_factory=SiemSinkConfig)
    syslog: SyslogSinkConfig = msgspec.field(default_factory=SyslogSinkConfig)

    def check(self, key: str) -> None:
        for name in SINKS:
            getattr(self, name).check(f"{key}.{name}")

    @classmethod
    def from_seed(cls, seed: SeedSettings) -> SinksConfig:
        """Each sink's section as the seed's settings make it (its config's `from_seed`)."""
        return cls(**{field.name: field.type.from_seed(seed) for field in msgspec.structs.fields(cls)})


SINKS = SinksConfig.__struct_fields__
"""The sinks' names, in the order the config lists them."""
