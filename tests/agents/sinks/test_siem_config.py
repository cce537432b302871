"""sinks.siem settings that cannot work are refused when the config is read, naming the key."""

from __future__ import annotations

import re

import pytest

from auditship.agents.config import parse_config
from auditship.agents.errors import ConfigError
from auditship.agents.sinks.siem.sink import REQUESTS_PER_COMMIT, build


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("enabled = true", "sinks.siem.endpoint: expected an http(s) URL, got ''"),
        ('enabled = true\nendpoint = "splunk:8088"', "sinks.siem.endpoint: expected an http(s) URL"),
        ('endpoint = "http://x"\nbatch_size = 0', "sinks.siem.batch_size: must be positive, got 0"),
        ("max_batch_bytes = -1", "sinks.siem.max_batch_bytes: must be positive"),
        ('format = "kafka"', "sinks.siem.format: Invalid enum value 'kafka'"),
    ],
)
def test_a_siem_setting_that_cannot_work_is_an_error_naming_the_key(toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(f"[sinks.siem]\n{toml}\n", source="agent.toml")


def test_the_runner_reads_several_requests_worth_and_the_sink_sends_batch_size_events_a_request() -> None:
    config = parse_config('[sinks.siem]\nenabled = true\nendpoint = "https://siem:8088"\nbatch_size = 50\n')
    sink, batch_size, flush_interval_s = build(config)
    assert (sink.name, batch_size, flush_interval_s) == ("siem", 50 * REQUESTS_PER_COMMIT, 1.0)


def test_a_syslog_facility_outside_0_to_23_is_an_error() -> None:
    with pytest.raises(ConfigError, match=re.escape("sinks.syslog.facility: must be 0..23, got 24")):
        parse_config("[sinks.syslog]\nfacility = 24\n")


def test_an_api_key_over_http_off_this_host_is_refused_unless_allowed():
    """The token would cross the network in clear: a config error naming both keys; loopback, https and
    allow_insecure = true pass."""
    sinks = '[sinks.siem]\nenabled = true\napi_key = "k"\nendpoint = "{}"\n'
    with pytest.raises(ConfigError, match=r"sinks\.siem\.endpoint: .*sinks\.siem\.api_key in clear"):
        parse_config(sinks.format("http://siem.example.com/ingest"))
    for endpoint in ("https://siem.example.com/ingest", "http://127.0.0.1:8088/ingest", "http://localhost/x"):
        parse_config(sinks.format(endpoint))
    parse_config(sinks.format("http://siem.example.com/ingest") + "allow_insecure = true\n")


def test_syslog_is_tls_by_default_on_its_tls_port():
    """6514 is syslog over TLS (RFC 5425): the default speaks TLS there."""
    syslog = parse_config("").sinks.syslog
    assert (syslog.tls, syslog.port, syslog.verify_tls) == (True, 6514, True)
