"""What a SIEM receives for each event: the event as auditship writes it (`native`), or OCSF."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

from auditship.agents.sinks.siem.ocsf import encode_ocsf
from shipper.event import AuditEvent

PayloadEncoder = Callable[[AuditEvent], bytes]


def payload_encoder(kind: Literal["native", "ocsf"]) -> PayloadEncoder:
    return msgspec.json.Encoder().encode if kind == "native" else encode_ocsf
