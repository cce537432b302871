"""`audit-agent redeliver`: dead letters offered again once the config is fixed; what is refused again
stays, with its new reason; nothing is lost or offered twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from auditship.agents.cli import main
from auditship.agents.sinks.base import Entry
from auditship.agents.sinks.runner import DeadLetter
from tests.agents.sinks.entries import entries
from tests.siem_server import API_KEY, FakeSiem, ServedSiem


@pytest.fixture
def siem() -> Iterator[ServedSiem]:
    served = ServedSiem(FakeSiem()).start()
    yield served
    served.stop()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("AUDITSHIP_DATA_DIR", raising=False)
    # The command sets up logging for its own process; here that process is pytest's, and later tests
    # would inherit it.
    monkeypatch.setattr("auditship.agents.redeliver.configure_logging", lambda level, process: None)
    return tmp_path / "data"


def write_config(data_dir: Path, endpoint: str, api_key: str = API_KEY) -> Path:
    config = data_dir.parent / "agent.toml"
    config.write_text(
        f'data_dir = "{data_dir}"\n'
        "[sinks.siem]\n"
        "enabled = true\n"
        'format = "elasticsearch"\n'
        f'endpoint = "{endpoint}"\n'
        f'api_key = "{api_key}"\n'
        "batch_size = 4\n"
        "timeout_s = 2.0\n"
    )
    return config


def dead_letters(data_dir: Path) -> Path:
    return data_dir / "deadletters" / "siem.jsonl"


def write_dead_letters(data_dir: Path, letters: list[Entry], extra: bytes = b"") -> None:
    """Dead letters as the runner writes them, after a bad API key refused every batch."""
    path = dead_letters(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    lines = [
        msgspec.json.encode(
            DeadLetter(entry.lsn, msgspec.Raw(msgspec.json.encode(entry.event)), "HTTP 401 ...", now)
        )
        for entry in letters
    ]
    path.write_bytes(b"".join(line + b"\n" for line in lines) + extra)


def kept(data_dir: Path) -> list[dict[str, object]]:
    path = dead_letters(data_dir)
    return [msgspec.json.decode(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def test_dead_letters_are_delivered_once_the_config_is_fixed_and_none_remain(
    siem: ServedSiem, data_dir: Path
) -> None:
    letters = entries(range(10))
    write_dead_letters(data_dir, letters)
    assert main(["redeliver", "siem", "--config", str(write_config(data_dir, siem.url))]) == 0
    assert siem.siem.doc_event_ids == [entry.event.event_id for entry in letters]
    assert kept(data_dir) == []
    assert list(dead_letters(data_dir).parent.iterdir()) == []


def test_what_is_refused_again_stays_with_its_new_reason_and_the_rest_is_delivered(
    siem: ServedSiem, data_dir: Path
) -> None:
    letters = entries(range(10))
    siem.siem.refuse_ids = {letters[2].event.event_id, letters[7].event.event_id}
    write_dead_letters(data_dir, letters)
    assert main(["redeliver", "siem", "--config", str(write_config(data_dir, siem.url))]) == 1
    remaining = kept(data_dir)
    assert [letter["seq"] for letter in remaining] == [2, 7]
    assert all("mapper_parsing_exception" in str(letter["reason"]) for letter in remaining)
    assert len(siem.siem.docs) == 8


def test_with_the_destination_still_down_every_letter_stays_and_unreadable_lines_are_kept_as_they_are(
    data_dir: Path,
) -> None:
    down = ServedSiem(FakeSiem())  # bound, never started: connections are refused
    try:
        letters = entries(range(5))
        write_dead_letters(data_dir, letters, extra=b"not a dead letter\n")
        config = write_config(data_dir, down.url)
        assert main(["redeliver", "siem", "--config", str(config), "--attempts", "2"]) == 1
    finally:
        down.stop()
    lines = dead_letters(data_dir).read_bytes().splitlines()
    assert b"not a dead letter" in lines
    remaining = [msgspec.json.decode(line) for line in lines if line != b"not a dead letter"]
    assert [letter["seq"] for letter in remaining] == list(range(5))
    assert all("2 attempts" in letter["reason"] for letter in remaining)


def test_a_run_cut_short_is_finished_first_and_newer_dead_letters_wait_for_the_next_run(
    siem: ServedSiem, data_dir: Path
) -> None:
    older, newer = entries(range(3)), entries(range(3, 6))
    write_dead_letters(data_dir, older)
    path = dead_letters(data_dir)
    path.rename(path.with_name(path.name + ".redelivering"))  # what a run killed midway leaves
    write_dead_letters(data_dir, newer)
    config = str(write_config(data_dir, siem.url))
    assert main(["redeliver", "siem", "--config", config]) == 0
    assert siem.siem.doc_event_ids == [entry.event.event_id for entry in older]
    assert [letter["seq"] for letter in kept(data_dir)] == [3, 4, 5]
    assert main(["redeliver", "siem", "--config", config]) == 0
    assert siem.siem.doc_event_ids == [entry.event.event_id for entry in older + newer]
    assert kept(data_dir) == []
