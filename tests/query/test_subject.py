"""`audit-query subject export USER` finds exactly the events by or about a subject, oldest first,
decrypts them for whoever holds the keys, and shows values of a forgotten subject as erased."""

import asyncio
import json
import stat
from datetime import timedelta

import pytest

from auditship.agents.crypto import Keyring, encrypt_sensitive
from auditship.agents.intake.counters import IntakeCounters
from auditship.agents.subjects.config import SubjectsConfig
from auditship.agents.subjects.forget import forget
from auditship.agents.subjects.keyring import SubjectKeyring
from auditship.ondisk.subject_keys import ERASED_VALUE, MAX_SUBJECT_CHARS
from auditship.query.errors import QueryError
from shipper.event import AuditEvent, AuditEventType
from tests.query.conftest import NOW
from tests.query.lakes import write_events
from tests.query.test_api import logger_for

ODD = "o'brien\"; DROP TABLE events; --\n\u202e☃"
# seq: (hours ago, user_id, resource, details, sensitive)
EVENTS = {
    1: (5, "alice", None, {}, {"ssn": "alice-ssn"}),
    2: (4, "bob", "user:alice", {}, {"note": "about alice"}),
    3: (3, "bob", "document:9", {}, {"note": "bob's"}),
    4: (2, "dr", "document:1", {"patient_id": 456}, {"diagnosis": "flu"}),
    5: (1, "alice2", None, {}, {}),
    6: (100, "alice", None, {}, {}),
    7: (1, "bob", "document:alice", {}, {}),
    8: (1, ODD, None, {}, {"ssn": "odd-ssn"}),
    9: (1, "456", None, {}, {}),
}


@pytest.fixture
def data_dir(tmp_path):
    """A lake of EVENTS, their sensitive values sealed as the intake seals them with per-subject keys;
    the keys beside it, where `--data-dir` looks for them."""
    data = tmp_path / "data"
    keyring = Keyring.load_or_create(tmp_path / "data-keys")
    subjects = SubjectKeyring.load_or_create(keyring, SubjectsConfig(per_subject_keys=True), IntakeCounters())
    events = []
    for seq, (hours, user, resource, details, sensitive) in EVENTS.items():
        kind, _, ident = (resource or "").partition(":")
        event = AuditEvent(
            event_type=AuditEventType.DATA_READ,
            event_id=f"{seq:032x}",
            timestamp=NOW - timedelta(hours=hours),
            user_id=user,
            resource_type=kind or None,
            resource_id=ident or None,
            service_name="records",
            details=details,
            sensitive=sensitive,
        )
        events.append((seq, encrypt_sensitive(event, subjects.keys_for(event))))
    write_events(data / "lake", events)
    return data


def exported(cli, *args):
    result = cli("subject", "export", *args)
    assert result.status == 0, result.err
    return [json.loads(line) for line in result.out.splitlines()]


def seqs(records):
    return [record["wal_seq"] for record in records]


def test_export_finds_the_events_by_and_about_the_subject_oldest_first(cli, data_dir):
    assert seqs(exported(cli, "alice", "--data-dir", data_dir)) == [6, 1, 2]
    assert seqs(exported(cli, "alice", "--data-dir", data_dir, "--since", "24h")) == [1, 2]
    assert seqs(exported(cli, "alice", "--data-dir", data_dir, "--until", "24h")) == [6]
    assert seqs(exported(cli, "nobody", "--data-dir", data_dir)) == []


def test_a_details_field_names_the_subject_also_as_an_integer(cli, data_dir):
    found = exported(cli, "456", "--data-dir", data_dir, "--field", "details.patient_id")
    assert seqs(found) == [4, 9]
    # The config's fields are replaced: resource:user no longer names alice, user_id always does.
    assert seqs(exported(cli, "alice", "--data-dir", data_dir, "--field", "details.patient_id")) == [6, 1]


def test_export_decrypts_for_the_holder_of_the_keys(cli, data_dir):
    plain = exported(cli, "alice", "--data-dir", data_dir, "--decrypt")
    assert [record.get("sensitive") for record in plain] == [
        None,
        {"ssn": "alice-ssn"},
        {"note": "about alice"},
    ]
    sealed = exported(cli, "alice", "--data-dir", data_dir)
    assert sealed[1]["sensitive"]["ssn"].startswith("aesgcm1:ds-")


def test_after_forget_the_subjects_values_are_erased_and_others_still_decrypt(cli, data_dir):
    keys_dir = data_dir.with_name("data-keys")
    assert len(forget(keys_dir, "alice")) == 1

    erased = exported(cli, "alice", "--data-dir", data_dir, "--decrypt")
    assert seqs(erased) == [6, 1, 2]  # the trail is intact
    assert [record.get("sensitive") for record in erased] == [
        None,
        {"ssn": ERASED_VALUE},
        {"note": ERASED_VALUE},
    ]
    # Bob's own events: the note he wrote about alice was sealed under hers (resource:user comes first).
    bob = exported(cli, "bob", "--data-dir", data_dir, "--decrypt")
    assert [record.get("sensitive") for record in bob] == [{"note": ERASED_VALUE}, {"note": "bob's"}, None]
    assert exported(cli, ODD, "--data-dir", data_dir, "--decrypt")[0]["sensitive"] == {"ssn": "odd-ssn"}


def test_untrusted_user_input_is_a_parameter_or_refused_in_one_line(cli, data_dir):
    assert seqs(exported(cli, ODD, "--data-dir", data_dir)) == [8]
    assert seqs(exported(cli, "' OR 1=1 --", "--data-dir", data_dir)) == []
    for bad, reason in (("x" * (MAX_SUBJECT_CHARS + 1), "at most 1024"), ("", "non-empty")):
        result = cli("subject", "export", bad, "--data-dir", data_dir)
        assert result.status == 2 and reason in result.err and result.out == ""
        assert len(result.err) < 300  # the long input is not echoed back
    result = cli("subject", "export", "alice", "--data-dir", data_dir, "--field", "details.a;b")
    assert result.status == 2 and "not a subject field" in result.err


def test_output_file_is_private_and_whole(cli, data_dir, tmp_path):
    target = tmp_path / "alice.jsonl"
    result = cli("subject", "export", "alice", "--data-dir", data_dir, "--decrypt", "-o", target)
    assert result.status == 0 and "exported 3 events" in result.err and result.out == ""
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [json.loads(line)["wal_seq"] for line in target.read_text().splitlines()] == [6, 1, 2]
    assert [path.name for path in tmp_path.iterdir() if path.name.endswith(".partial")] == []


def test_decrypt_with_a_lake_alone_asks_for_the_keys(cli, data_dir):
    result = cli("subject", "export", "alice", "--lake", data_dir / "lake", "--decrypt")
    assert result.status == 2 and "--keys-dir" in result.err
    keys = data_dir.with_name("data-keys")
    found = exported(cli, "alice", "--lake", data_dir / "lake", "--decrypt", "--keys-dir", keys)
    assert found[1]["sensitive"] == {"ssn": "alice-ssn"}


def test_the_logger_exports_the_same(data_dir):
    logger = logger_for(data_dir)

    async def export(subject):
        return [event async for event in logger.export_subject(subject, decrypt=True)]

    events = asyncio.run(export("alice"))
    assert [event.event_id for event in events] == [f"{seq:032x}" for seq in (6, 1, 2)]
    assert events[1].sensitive == {"ssn": "alice-ssn"}
    with pytest.raises(QueryError, match="at most"):
        asyncio.run(export("x" * 5000))
