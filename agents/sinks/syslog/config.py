"""The syslog sink's section, `[sinks.syslog]` (the seed has no setting for it: its defaults)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from auditship.agents.section import Positive
from auditship.agents.sinks.base import SinkConfig


class SyslogSinkConfig(SinkConfig):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 6514
    tls: bool = True
    """TLS on 6514, syslog's TLS port (RFC 5425); plain TCP is an explicit `tls = false` (usually on 514)."""
    verify_tls: bool = True
    ca_file: str = ""
    payload: Literal["json", "cef"] = "json"
    app_name: str = "auditship"
    facility: Annotated[int, msgspec.Meta(ge=0, le=23)] = 13
    """13 is `log audit` (RFC 5424)."""
    timeout_s: float = 10.0
    batch_size: Positive = 500
    flush_interval_s: float = 1.0
