"""The compliance presets as data: their floors, the strictest winning, names in any case, and the
logger's cleanup refusing to go below the floor of its context's compliance requirements."""

from __future__ import annotations

import asyncio

import pytest

from shipper.compliance import FRAMEWORKS, RetentionFloorError, check_retention, frameworks, strictest
from shipper.config import AuditConfig, AuditContext
from shipper.logger import AuditLogger


def test_the_floors_are_the_frameworks_years_counted_up_to_whole_days() -> None:
    floors = {name: framework.floor_days for name, framework in FRAMEWORKS.items()}
    assert floors == {"sox": 2557, "hipaa": 2192, "pci": 366, "gdpr": 0}
    assert FRAMEWORKS["pci"].searchable_days == 92


def test_names_are_case_insensitive_and_an_unknown_one_is_named() -> None:
    assert [f.name for f in frameworks(["GDPR", "Sox", "sox"])] == ["sox", "gdpr"]
    with pytest.raises(ValueError, match="unknown compliance framework 'iso27001': expected some of sox"):
        frameworks(["sox", "ISO27001"])
    assert [f.name for f in frameworks(["ISO27001", "PCI"], strict=False)] == ["pci"]


def test_the_strictest_floor_wins_and_the_error_names_it() -> None:
    chosen = frameworks(["pci", "hipaa", "gdpr"])
    assert strictest(chosen) == FRAMEWORKS["hipaa"]
    assert strictest(frameworks(["gdpr"])) is None
    check_retention(2192, chosen, "retention.days")
    with pytest.raises(RetentionFloorError, match=r"^retention.days: 2191 days is below .* HIPAA, 2192 days"):
        check_retention(2191, chosen, "retention.days")
    check_retention(1, frameworks(["gdpr"]), "retention.days")  # no floor


def test_the_logger_refuses_a_cleanup_below_its_contexts_floor_before_touching_anything(tmp_path) -> None:
    """compliance_requirements=["SOX", "GDPR"] (the seed's example): 365 days is refused, naming SOX,
    before the lake is read (there is none here, which would be another error)."""
    config = AuditConfig(data_dir=tmp_path / "none")
    logger = AuditLogger(config, AuditContext("billing", compliance_requirements=["SOX", "GDPR"]), emit=print)
    with pytest.raises(RetentionFloorError, match=r"cleanup_old_events\(older_than_days\): 365 days .* SOX"):
        asyncio.run(logger.cleanup_old_events(older_than_days=365))
    with pytest.raises(RetentionFloorError, match="SOX, 2557 days"):
        asyncio.run(logger.cleanup_old_events())  # retention_days: 365
