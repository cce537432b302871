"""Bad input to any audit-query command is one line on stderr naming the problem, and exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

COMMANDS = ["search", "stats", "tail", "sql", "retention"]


def one_line_error(result, *expected: str) -> None:
    assert result.status == 2, result
    assert result.err.count("\n") == 1 and "Traceback" not in result.err, result.err
    for text in expected:
        assert text in result.err, result.err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sql", "SELEC 1"], ["audit-query: bad SQL: Parser Error: syntax error"]),
        (["sql", "SELECT nope FROM events"], ["unknown field", '"nope"', "DESCRIBE events"]),
        (
            ["sql", "SELECT * FROM nope"],
            ["bad SQL: Catalog Error", "nope", "the lake's view is called events"],
        ),
        (["sql", "SELECT 'x'::INTEGER"], ["query failed: Conversion Error"]),
        (["search", "--since", "yesterday"], ["--since: 'yesterday' is neither an ISO 8601 time"]),
        (["search", "--until", "5x"], ["--until: '5x' is neither"]),
        (["search", "--since", "1h", "--until", "2h"], ["--since 1h is not before --until 2h"]),
        (["search", "--type", "login"], ["--type: unknown value 'login'; one of user_login, "]),
        (["search", "--outcome", "ok"], ["--outcome: unknown value 'ok'"]),
        (["search", "--severity", "extreme"], ["--severity: unknown value 'extreme'; one of info, low"]),
        (["search", "--resource", ":42"], ["--resource: ':42' is not TYPE or TYPE:ID"]),
        (["search", "--resource", "document:"], ["--resource: 'document:' is not TYPE or TYPE:ID"]),
        (["search", "--limit", "-1"], ["--limit: -1 is negative"]),
        (["search", "--limit", "many"], ["audit-query search: argument --limit: invalid int value: 'many'"]),
        (["search", "--format", "xml"], ["argument --format: invalid choice: 'xml'"]),
        (["stats", "--since", "2024-13-01"], ["--since: '2024-13-01' is neither"]),
        (["tail", "--interval", "0"], ["--interval: 0.0 is not between 0.1 and 60.0"]),
        (["tail", "--lines", "-3"], ["--lines: -3 is negative"]),
        (["retention", "--older-than", "365"], ["--older-than: '365' is not an age"]),
        (["retention", "--older-than", "2024-01-01"], ["--older-than: '2024-01-01' is not an age"]),
        (["frobnicate"], ["audit-query: argument COMMAND: invalid choice: 'frobnicate'"]),
    ],
)
def test_bad_input_is_one_line_and_status_2(lake, cli, args, expected):
    """Bad SQL, an unknown field, a bad time, a bad value or option: one line, status 2, no traceback."""
    command, *rest = args
    location = ["--lake", lake] if command in COMMANDS else []
    one_line_error(cli(command, *location, *rest), *expected)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_lake_is_named(tmp_path, cli, command):
    """--lake pointing nowhere: the path is named, with where lakes come from."""
    args = ["SELECT 1"] if command == "sql" else []
    one_line_error(
        cli(command, "--lake", tmp_path / "nowhere", *args), f"{tmp_path / 'nowhere'}: no lake here"
    )


@pytest.mark.parametrize("command", ["search", "stats", "tail", "sql"])
def test_an_empty_lake_is_named(tmp_path, cli, command):
    """A lake directory without parts (the sink has not flushed yet, or is off) is an error, not silence."""
    (tmp_path / "lake" / "date=2024-05-01").mkdir(parents=True)
    args = ["SELECT 1"] if command == "sql" else []
    one_line_error(cli(command, "--lake", tmp_path / "lake", *args), "the lake has no parts yet")


def test_missing_data_dir_and_bad_config(tmp_path, cli):
    """A data directory that does not exist, and a config file with an unknown key, name the path/key."""
    one_line_error(
        cli("retention", "--data-dir", tmp_path / "nope"), f"{tmp_path / 'nope'}: no such data directory"
    )
    one_line_error(
        cli("search", "--data-dir", tmp_path / "nope"), f"{tmp_path / 'nope' / 'lake'}: no lake here"
    )
    config = tmp_path / "agent.toml"
    config.write_text("[retention]\ndayz = 3\n")
    one_line_error(cli("stats", "--config", config), f"{config}: retention.dayz: unknown key")
    one_line_error(cli("search", "--lake", tmp_path, "--config", config), "not allowed with argument")


def test_the_installed_command_exits_2_without_a_traceback(tmp_path):
    """Run as a process: status 2, one line on stderr, nothing on stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "auditship.query", "search", "--lake", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"audit-query: {tmp_path / 'nowhere'}: no lake here "
        "(the agent's parquet sink writes it; see --lake, --data-dir, --config)\n"
    )
