"""audit-query as a user runs it in a pipeline: a reader that goes away early is no error."""

from __future__ import annotations

import pytest

from tests.pipes import into_closed_pipe


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize(
    "command",
    [
        ["search", "--limit", "0"],
        ["stats", "--format", "table"],
        ["sql", "SELECT * FROM events"],
        ["tail", "-n", "5"],
    ],
    ids=["search", "stats", "sql", "tail"],
)
def test_output_into_a_closed_pipe_ends_quietly(lake, command: list[str], buffered: bool) -> None:
    """`audit-query search | head`: the reader is gone before the output is written; the command exits 0
    with nothing on stderr, not a BrokenPipeError traceback."""
    result = into_closed_pipe("auditship.query", *command, "--lake", str(lake), buffered=buffered)
    assert (result.returncode, result.stderr) == (0, "")
