"""The agent's log lines: one format for the supervisor and every worker, on stderr (the journal)."""

from __future__ import annotations

import logging
import os


def configure_logging(level: str, process: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s {process}[{os.getpid()}] %(name)s: %(message)s",
        force=True,
    )
