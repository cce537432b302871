"""Events into a Detector as WAL records, without an agent."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import msgspec

from auditship.agents.detect.config import DetectConfig
from auditship.agents.detect.engine import Detector, Found
from shipper.event import AuditEvent
from shipper.wire import Frame, frame_encoder
from tests.agents.detect.scenarios import DENIED


def config_with_deny_list(directory: Path, **settings: object) -> DetectConfig:
    """The default [detect], `settings` changed, with a deny list (scenarios.DENIED) in `directory`."""
    deny_list = directory / "deny.txt"
    deny_list.write_text(f"# scenarios\n{DENIED}\n")
    config = msgspec.convert(settings, DetectConfig)
    config.denied_address.deny_list = str(deny_list)
    return config


def feed(detector: Detector, events: Iterable[AuditEvent], first_lsn: int = 1) -> list[Found]:
    """Each event as the WAL record at the next seq; what the rules found."""
    found: list[Found] = []
    for lsn, event in enumerate(events, first_lsn):
        found.extend(detector.take(lsn, frame_encoder.encode(Frame("0123456789abcdef", lsn, lsn, event))))
    return found
