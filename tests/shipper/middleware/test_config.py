"""AuditMiddlewareConfig keeps the seed's names and style; a value the middleware cannot use is a
ValueError naming the option, raised when a middleware or interceptor is built."""

from __future__ import annotations

import math

import pytest

from shipper.middleware.config import ALWAYS_REDACTED, AuditMiddlewareConfig, compile_config


def test_the_seeds_attribute_by_attribute_configuration_compiles() -> None:
    """The seed's example sets options one by one after construction; they all take effect."""
    config = AuditMiddlewareConfig()
    config.log_requests = True
    config.log_responses = True
    config.log_headers = True
    config.exclude_paths = ["/health", "/metrics/"]
    config.slow_request_threshold_ms = 1000.0
    config.detect_anomalies = True
    config.sample_rate = 0.1
    settings = compile_config(config)
    assert settings.log_headers
    assert settings.exclude_paths == ("/health", "/metrics")
    assert settings.slow_ms == 1000.0
    assert settings.sample_rate == 0.1


def test_a_misspelt_option_is_an_attribute_error_not_a_silent_no_op() -> None:
    """The class has slots: setting an option it does not have fails at once."""
    config = AuditMiddlewareConfig()
    with pytest.raises(AttributeError, match="log_header"):
        config.log_header = True  # type: ignore[attr-defined]


def test_defaults_redact_credentials_and_log_no_bodies() -> None:
    """By default credentials headers are redacted, bodies are not logged, every request is kept."""
    settings = compile_config(None)
    assert (
        settings.redacted
        == ALWAYS_REDACTED
        == {"authorization", "proxy-authorization", "cookie", "set-cookie"}
    )
    assert settings.body_limit == 0
    assert settings.sample_rate == 1.0
    assert settings.trusted_proxies == ()


def test_configured_names_add_to_the_redacted_ones_case_insensitively() -> None:
    """redact_headers adds to what is always redacted; names are matched in lower case."""
    settings = compile_config(AuditMiddlewareConfig(redact_headers=["X-Api-Key"]))
    assert settings.redacted == ALWAYS_REDACTED | {"x-api-key"}


def test_no_slow_request_threshold_turns_slow_events_off() -> None:
    """slow_request_threshold_ms None: no request is ever slow."""
    assert compile_config(AuditMiddlewareConfig(slow_request_threshold_ms=None)).slow_ms == math.inf


def test_bodies_are_logged_up_to_max_body_size_only_when_asked() -> None:
    """max_body_size matters only with log_body."""
    assert compile_config(AuditMiddlewareConfig(max_body_size=64)).body_limit == 0
    assert compile_config(AuditMiddlewareConfig(log_body=True, max_body_size=64)).body_limit == 64


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("sample_rate", 1.5),
        ("sample_rate", -0.1),
        ("sample_rate", "all"),
        ("sample_rate", True),
        ("max_body_size", 0),
        ("max_body_size", 10.5),
        ("slow_request_threshold_ms", 0),
        ("slow_request_threshold_ms", math.nan),
        ("auth_failure_threshold", 0),
        ("auth_failure_window_s", -1),
        ("exclude_paths", ["health"]),
        ("exclude_paths", "/health"),
        ("redact_headers", ["bad header"]),
        ("trusted_proxies", ["10.0.0.0/33"]),
        ("trusted_proxies", ["proxy.internal"]),
        ("request_id_header", ""),
        ("user_resolver", "scope.user"),
        ("grpc_user_resolver", 42),
        ("log_headers", "yes"),
        ("detect_anomalies", 1),
    ],
)
def test_an_unusable_value_is_a_value_error_naming_the_option(option: str, value: object) -> None:
    """Each option refuses what it cannot use, and the message names it and shows the value."""
    config = AuditMiddlewareConfig()
    setattr(config, option, value)
    with pytest.raises(ValueError, match=rf"^AuditMiddlewareConfig\.{option}: expected .*, got "):
        compile_config(config)


def test_a_compiled_config_does_not_see_later_changes() -> None:
    """A middleware reads its config once; changing the object afterwards changes nothing built from it."""
    config = AuditMiddlewareConfig(sample_rate=0.5)
    settings = compile_config(config)
    config.sample_rate = 0.0
    assert settings.sample_rate == 0.5
