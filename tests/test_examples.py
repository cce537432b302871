"""Each runnable example in examples/ runs to its end on this machine and prints what it promises: an
embedded agent under a temporary data directory, SQLite for the database one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# Per example: its arguments, and lines its output must hold.
EXPECTED: dict[str, tuple[list[str], list[str]]] = {
    "basic_setup.py": ([], ["data_update      success  update_email user/user123", "total 4, security 2"]),
    "custom_events.py": (
        [],
        [
            "business_logic: Payment processed successfully (sensitive fields, encrypted: card_number)",
            "transaction: Refund issued (sensitive fields, encrypted: none)",
        ],
    ),
    "compliance.py": (
        [],
        [
            "nurse.jones  view_chart failure compliance=['HIPAA', 'GDPR', 'SOX']",
            "dr.smith     view_chart success compliance=['HIPAA', 'GDPR', 'SOX']",
        ],
    ),
    "detection.py": (
        [],
        [
            "2 findings:",
            "brute_force_user   high      user_id=mallory-target     10 reached the threshold of 10 in 300 s",
            "password_spraying  critical  source_ip=198.51.100.4     10 reached the threshold of 10 in 600 s",
        ],
    ),
    "performance.py": (["2000"], ["all confirmed after", "sent 2000, confirmed 2000, spilled 0, dropped 0"]),
    "database.py": ([], ["data_create order-0 by bob", "data_create order-2 by bob"]),
    "fastapi_app.py": (
        [],
        [
            "responses: 200 401",
            "requests audited: 2",
            "auth_failure  /api/users/{user_id} 401 user=None",
            "api_request   /api/users/{user_id} 200 user=alice",
        ],
    ),
}


def test_every_example_is_run_by_this_test() -> None:
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_example_runs_and_prints_what_it_promises(name: str, tmp_path: Path) -> None:
    arguments, lines = EXPECTED[name]
    # tests/conftest.py cleared AUDITSHIP_* and pointed the install marks at nothing: kept for the child.
    env = os.environ | {
        "AUDITSHIP_DATA_DIR": str(tmp_path / "data"),
        "AUDITSHIP_RUNTIME_DIR": str(tmp_path / "run"),
    }
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *arguments],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for line in lines:
        assert line in result.stdout, f"{line!r} not in the output of {name}:\n{result.stdout}"
