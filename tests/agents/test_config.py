"""The agent's TOML config: every mistake is an error naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditship.agents.cli import main
from auditship.agents.config import AgentConfig, load_config, parse_config
from auditship.agents.errors import ConfigError


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[wal]\nfsync = "sometimes"\n', "agent.toml: wal.fsync: Invalid enum value 'sometimes'"),
        ("[wal]\nfsycn = true\n", "agent.toml: wal.fsycn: unknown key; did you mean 'fsync'?"),
        (
            "[sinks.file]\nmax_file_sise = 1\n",
            "agent.toml: sinks.file.max_file_sise: unknown key; did you mean 'max_file_size'?",
        ),
        ('data_dri = "x"\n', "agent.toml: data_dri: unknown key; did you mean 'data_dir'?"),
        ('[sinks.file]\nmax_files = "ten"\n', "agent.toml: sinks.file.max_files: Expected `int`, got `str`"),
        (
            "[sinks.file]\nmax_file_size = 0\n",
            "agent.toml: sinks.file.max_file_size: must be positive, got 0",
        ),
        ("[sinks.kafka]\nenabled = true\n", "agent.toml: sinks.kafka: unknown key"),
        ('endpoint = "udp://x"\n', "agent.toml: endpoint: unsupported endpoint 'udp://x'"),
        ("data_dir = \n", "agent.toml: not valid TOML"),
        (
            '[intake.identities]\nno-such-user-here = ["payments"]\n',
            "agent.toml: intake.identities.no-such-user-here: no such user on this host",
        ),
        ('[intake.identities]\n1001 = "payments"\n', "agent.toml: intake.identities[...]: Expected `array`"),
        ('[intake]\nidentity_mismatch = "warn"\n', "agent.toml: intake.identity_mismatch: Invalid enum"),
        ("[intake]\nsender_burst = 0\n", "agent.toml: intake.sender_burst: must be positive, got 0"),
        (
            "[intake]\nsender_byte_burst = 1000\n",
            "agent.toml: intake.sender_byte_burst: must be at least intake.max_frame_bytes (1048576), "
            "got 1000",
        ),
        (
            'endpoint = "tcp://0.0.0.0:5555"\n[intake]\ncurve = false\n',
            "agent.toml: intake.curve: false is allowed on a loopback endpoint only, and tcp://0.0.0.0:5555",
        ),
    ],
)
def test_a_bad_config_names_the_file_and_the_key(toml: str, message: str) -> None:
    """Each kind of mistake says where it is."""
    with pytest.raises(ConfigError) as raised:
        parse_config(toml, source="agent.toml")
    assert str(raised.value).startswith(message)


def test_an_unknown_key_like_none_of_its_sections_gets_no_guess() -> None:
    """A guess is offered only when one of the section's keys is close; `kafka` is like no sink."""
    with pytest.raises(ConfigError) as raised:
        parse_config("[sinks.kafka]\nenabled = true\n", source="agent.toml")
    assert str(raised.value) == "agent.toml: sinks.kafka: unknown key"


def test_an_empty_config_is_every_default_and_runs_the_file_sink() -> None:
    """No keys at all: a user run works, with the file and Parquet sinks on and the WAL fsyncing on an
    interval."""
    config = parse_config("")
    assert config.enabled_sinks() == ["file", "parquet"]
    assert config.wal.fsync == "interval"


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_check_config_exits_2_with_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`audit-agent check-config` on a bad file: exit code 2 and the message, no traceback."""
    path = tmp_path / "agent.toml"
    path.write_text("[intake]\nmax_frame_byte = 10\n")
    assert main(["check-config", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.strip() == (
        f"audit-agent: {path}: intake.max_frame_byte: unknown key; did you mean 'max_frame_bytes'?"
    )


def test_check_config_prints_the_effective_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[sinks.console]\nenabled = true\nformat = "json"\n')
    assert main(["check-config", str(path)]) == 0
    effective = parse_config(capsys.readouterr().out)
    assert effective.enabled_sinks() == ["file", "console", "parquet"]
    assert effective.sinks.console.line_format == "json"


def test_identities_name_users_or_uids_and_a_uid_named_twice_gets_both_lists() -> None:
    config = parse_config('[intake.identities]\nroot = ["ops"]\n0 = ["backup"]\n1001 = ["payments"]\n')
    allowed = config.intake.allowed_services()
    assert allowed == {0: frozenset({"ops", "backup"}), 1001: frozenset({"payments"})}


def test_identities_name_a_curve_client_key_as_key_name() -> None:
    """A TCP sender is the name of its client key (`audit-agent keys add NAME`), never a host user."""
    config = parse_config('[intake.identities]\n"key:billing-host" = ["billing"]\n')
    assert config.intake.allowed_services() == {"billing-host": frozenset({"billing"})}


def test_tcp_is_curve_by_default_and_plain_only_on_loopback() -> None:
    """Plain TCP on loopback is allowed (only local processes reach it), never beyond."""
    assert parse_config('endpoint = "tcp://0.0.0.0:5555"\n').uses_curve
    plain = parse_config('endpoint = "tcp://127.0.0.1:5555"\n[intake]\ncurve = false\n')
    assert not plain.uses_curve
    assert not parse_config("").uses_curve, "ipc: the kernel names the sender"


def test_the_installed_agents_spool_is_the_system_spool_and_any_others_is_under_its_data_dir_and_told() -> (
    None
):
    """runtime_dir /run/auditship: /var/spool/auditship, which the group reaches. Any other runtime_dir
    and no spool_dir: `spool` in the 0700 data directory, and a warning naming both keys and what to set.
    A spool_dir named, even that one, is not warned about."""
    installed = AgentConfig(runtime_dir="/run/auditship", data_dir="/var/lib/auditship")
    assert installed.spool_path == Path("/var/spool/auditship")
    assert installed.spool_warning() is None
    elsewhere = AgentConfig(runtime_dir="/run/audit-other", data_dir="/var/lib/audit-other")
    assert elsewhere.spool_path == Path("/var/lib/audit-other/spool")
    warning = elsewhere.spool_warning()
    assert warning is not None
    assert "spool_dir is not set and runtime_dir is /run/audit-other" in warning
    assert "the spool is /var/lib/audit-other/spool, inside the data directory" in warning
    assert 'spool_dir = "/var/spool/auditship"' in warning
    named = AgentConfig(runtime_dir="/run/audit-other", spool_dir="/var/lib/audit-other/spool")
    assert named.spool_warning() is None


def test_by_default_on_a_host_without_an_installed_agent_the_spool_is_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every key at its default, no agent installed (the suite's AUDITSHIP_INSTALL_MARKS): the user's own
    runtime directory and `spool` in the data directory."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    config = AgentConfig()
    assert config.runtime_path == tmp_path / "xdg" / "auditship"
    assert config.spool_path == Path("auditship-data/spool").absolute()


def test_compliance_presets_are_checked_names_and_set_a_retention_floor() -> None:
    """An unknown framework is an error naming it; retention.days below the strictest floor is an error
    naming the framework and the floor (SOX 7 years: 2557 days), so that no cleanup ever goes below it."""
    with pytest.raises(ConfigError, match=r"<config>: compliance: unknown compliance framework 'sax'"):
        parse_config('compliance = ["sax"]\n')
    with pytest.raises(
        ConfigError, match=r"retention.days: 365 days is below the retention floor of SOX, 2557"
    ):
        parse_config('compliance = ["gdpr", "sox", "pci"]\n')
    config = parse_config('compliance = ["GDPR", "sox", "pci"]\n[retention]\ndays = 2557\n')
    assert [framework.name for framework in config.frameworks] == ["sox", "pci", "gdpr"]
    assert parse_config('compliance = ["gdpr"]\n').retention.days == 365
