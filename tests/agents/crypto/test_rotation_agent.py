"""Field key rotation in a real agent: `keys rotate` reaches the running intake without a restart, and
the intake rotates by itself after `keys.rotate_after_encryptions`; `audit-query cat --decrypt` reads
every event, whichever key sealed it."""

from __future__ import annotations

import msgspec
import pytest

from auditship.agents.cli import main as agent_main
from auditship.agents.crypto import Keyring
from auditship.query.cli import main as query_main
from shipper.emitter import Emitter
from shipper.event import AuditEvent, AuditEventType
from tests.agentproc import QUICK_CONFIG, AgentDirs, RunningAgent, file_events
from tests.waiting import wait_for


def emit(emitter: Emitter, number: int) -> None:
    emitter.emit(AuditEvent(event_type=AuditEventType.DATA_READ, sensitive={"card": f"card-{number}"}))
    assert emitter.flush(30)


def sealing_keys(dirs: AgentDirs) -> list[str]:
    """The key id of each event in the file sink's current file, in order."""
    return [str(event["sensitive"]["card"]).split(":")[1] for event in file_events(dirs.data)]  # type: ignore[index]


def decrypted_cards(dirs: AgentDirs, capsysbinary: pytest.CaptureFixture[bytes]) -> list[str]:
    capsysbinary.readouterr()
    assert query_main(["cat", "--data-dir", str(dirs.data), "--keys-dir", str(dirs.keys), "--decrypt"]) == 0
    lines = capsysbinary.readouterr().out.splitlines()
    return [msgspec.json.decode(line)["sensitive"]["card"] for line in lines]


def test_keys_rotate_reaches_a_running_agent_and_both_keys_decrypt(
    dirs: AgentDirs, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """An event before `keys rotate` is sealed under the old key; the agent, not restarted, seals the
    events after it under the new one (within a second: events are sent until one shows it); cat
    --decrypt reads them all."""
    agent = RunningAgent(dirs, QUICK_CONFIG).start()
    try:
        emitter = Emitter(agent.config.intake_endpoint)
        emit(emitter, 0)
        wait_for(lambda: len(file_events(dirs.data)) == 1, 30, "the first event in the file")
        old = Keyring.load(dirs.keys).active_key_id
        assert agent_main(["keys", "rotate", "--config", str(dirs.config_file)]) == 0
        new = Keyring.load(dirs.keys).active_key_id
        sent = [1]

        def sealed_under_new() -> bool:
            emit(emitter, sent[0])
            sent[0] += 1
            wait_for(lambda: len(file_events(dirs.data)) == sent[0], 30, "the event in the file")
            return sealing_keys(dirs)[-1] == new

        wait_for(sealed_under_new, 30, "an event sealed under the rotated key")
        emitter.close()
    finally:
        agent.stop()
    keys = sealing_keys(dirs)
    assert keys[0] == old != new
    assert keys == sorted(keys, key=[old, new].index), "once the new key is used, the old one is not"
    assert decrypted_cards(dirs, capsysbinary) == [f"card-{n}" for n in range(sent[0])]


def test_the_agent_rotates_after_the_configured_number_of_encryptions(
    dirs: AgentDirs, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """With keys.rotate_after_encryptions = 2, five events of one sensitive value each are sealed under
    three keys, two by two; keys list then shows the three with their counts, the last one active."""
    agent = RunningAgent(dirs, QUICK_CONFIG + "[keys]\nrotate_after_encryptions = 2\n").start()
    try:
        emitter = Emitter(agent.config.intake_endpoint)
        for number in range(5):
            emit(emitter, number)
        emitter.close()
        wait_for(lambda: len(file_events(dirs.data)) == 5, 30, "five events in the file")
    finally:
        agent.stop()
    keys = sealing_keys(dirs)
    first, second, third = dict.fromkeys(keys)
    assert keys == [first, first, second, second, third]
    assert "reached keys.rotate_after_encryptions = 2" in agent.log()
    assert decrypted_cards(dirs, capsysbinary) == [f"card-{n}" for n in range(5)]

    capsysbinary.readouterr()
    assert agent_main(["keys", "list", "--config", str(dirs.config_file)]) == 0
    listed = capsysbinary.readouterr().out.decode().splitlines()[:3]
    assert [line.split()[1] for line in listed] == [first, second, third]
    assert [line.split("  uses ")[1] for line in listed] == ["2  retired", "2  retired", "1  active"]
