"""AuditConfig keeps the seed's settings and refuses misspelt ones; AuditContext names the service."""

import socket
from pathlib import Path

import pytest

from shipper.config import AuditConfig, AuditContext
from shipper.event import AuditEventType, AuditSeverity


def test_defaults_are_the_seeds_documented_values():
    """A fresh config logs to a file only, keeps a year, filters nothing and uses the default agent.
    flush_interval_seconds is the emitter's linger: 50 ms, not the seed's 30 s, which would keep events
    in a service's memory that long."""
    config = AuditConfig()
    assert config.enable_file_logging is True
    assert config.enable_database_logging is False
    assert config.enable_console_logging is False
    assert config.enable_siem_logging is False
    assert config.log_file_path is None
    assert config.max_file_size == 100 * 1024 * 1024
    assert config.max_files == 10
    assert config.encrypt_sensitive_data is True
    assert config.async_logging is True
    assert config.batch_size == 100
    assert config.flush_interval_seconds == 0.05
    assert config.fail_closed is False
    assert config.embedded == "auto"
    assert config.retention_days == 365
    assert config.auto_cleanup is True
    assert config.min_severity is AuditSeverity.INFO
    assert config.excluded_event_types == []
    assert config.endpoint is None
    assert config.data_dir is None
    assert config.destinations == []


def test_every_setting_in_the_seed_can_be_assigned_after_construction():
    """The seed's configuration block runs unchanged and every value sticks."""
    config = AuditConfig()
    config.enable_file_logging = True
    config.enable_database_logging = True
    config.enable_console_logging = False
    config.enable_siem_logging = True
    config.log_file_path = Path("logs/audit.log")
    config.max_file_size = 100 * 1024 * 1024
    config.max_files = 10
    config.encrypt_sensitive_data = True
    config.async_logging = True
    config.batch_size = 100
    config.flush_interval_seconds = 30
    config.retention_days = 365
    config.auto_cleanup = True
    config.min_severity = AuditSeverity.INFO
    config.excluded_event_types = [AuditEventType.HEARTBEAT]
    # The seed's performance profiles.
    config.batch_size = 500
    config.flush_interval_seconds = 10
    config.async_logging = False
    config.min_severity = AuditSeverity.MEDIUM

    assert config.enable_database_logging is True
    assert config.enable_siem_logging is True
    assert config.log_file_path == Path("logs/audit.log")
    assert config.excluded_event_types == [AuditEventType.HEARTBEAT]
    assert config.batch_size == 500
    assert config.flush_interval_seconds == 10
    assert config.async_logging is False
    assert config.min_severity is AuditSeverity.MEDIUM


def test_settings_can_also_be_given_as_keywords():
    """AuditConfig(batch_size=500, ...) is the same as assigning afterwards."""
    config = AuditConfig(batch_size=500, endpoint="tcp://127.0.0.1:5555", data_dir=Path("/tmp/audit"))
    assert config.batch_size == 500
    assert config.endpoint == "tcp://127.0.0.1:5555"
    assert config.data_dir == Path("/tmp/audit")


def test_a_misspelt_setting_is_refused_naming_it_and_the_close_matches():
    """A typo must not be silently ignored: it raises and says what was probably meant."""
    config = AuditConfig()
    with pytest.raises(AttributeError) as raised:
        config.enable_fle_logging = False  # type: ignore[attr-defined]
    message = str(raised.value)
    assert "'enable_fle_logging'" in message
    assert "'enable_file_logging'" in message
    assert raised.value.name == "enable_fle_logging"
    assert config.enable_file_logging is True


def test_a_misspelt_setting_without_close_matches_is_still_named():
    """An attribute unlike any setting is refused with its name and no guess."""
    with pytest.raises(AttributeError, match=r"AuditConfig has no setting 'colour'$"):
        AuditConfig().colour = "blue"  # type: ignore[attr-defined]


def test_a_misspelt_keyword_is_refused():
    """The keyword constructor rejects names it does not know, too."""
    with pytest.raises(TypeError, match="batchsize"):
        AuditConfig(batchsize=3)  # type: ignore[call-arg]


def test_list_settings_are_not_shared_between_configs():
    """Appending to one config's excluded types leaves another config alone."""
    first, second = AuditConfig(), AuditConfig()
    first.excluded_event_types.append(AuditEventType.HEARTBEAT)
    first.destinations.append(object())
    assert second.excluded_event_types == []
    assert second.destinations == []


def test_context_takes_the_seeds_arguments():
    """AuditContext accepts every argument the seed passes and keeps them."""
    context = AuditContext(
        service_name="user-service",
        service_version="2.1.0",
        environment="production",
        node_id="us-east-1-node-03",
        compliance_requirements=["SOX", "GDPR"],
    )
    assert context.service_name == "user-service"
    assert context.service_version == "2.1.0"
    assert context.environment == "production"
    assert context.node_id == "us-east-1-node-03"
    assert context.compliance_requirements == ["SOX", "GDPR"]


def test_context_node_id_defaults_to_the_host_name():
    """Without node_id, events say which host they came from."""
    context = AuditContext(service_name="my-service", service_version="1.0.0", environment="production")
    assert context.node_id == socket.gethostname()
    assert context.compliance_requirements == []


def test_context_requires_a_service_name():
    """An event that cannot say which service logged it is refused at the start."""
    with pytest.raises(ValueError, match="service_name"):
        AuditContext(service_name="")


def test_context_is_read_only():
    """A logger snapshots its context, so changing one afterwards is refused rather than ignored."""
    context = AuditContext(service_name="my-service")
    with pytest.raises(AttributeError):
        context.environment = "staging"  # type: ignore[misc]


def test_context_event_fields_are_the_service_fields_of_an_event():
    """event_fields() gives the four service fields of AuditEvent by name."""
    context = AuditContext("svc", "1.2.3", "staging", "node-1")
    assert context.event_fields() == {
        "service_name": "svc",
        "service_version": "1.2.3",
        "environment": "staging",
        "node_id": "node-1",
    }
