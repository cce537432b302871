"""Per-subject keys: the intake seals a subject's values under a key of their own, `forget` destroys it so
that nobody holding the whole keys_dir can open those values again, and everyone else's still open."""

import os

import pytest

from auditship.agents.crypto import Keyring, encrypt_sensitive
from auditship.agents.intake.counters import IntakeCounters
from auditship.agents.subjects.config import SubjectsConfig
from auditship.agents.subjects.forget import forget
from auditship.agents.subjects.keyring import SubjectKeyring
from auditship.ondisk.envelope import open_sensitive
from auditship.ondisk.errors import DecryptionError
from auditship.ondisk.keys import FieldKeys
from auditship.ondisk.subject_keys import ERASED_VALUE, MAX_SUBJECT_CHARS, SubjectFiles
from shipper.event import AuditEvent, AuditEventType

ODD = "ünïcødé 'quoted' \"double\"\n; DROP TABLE events; -- ../../etc/passwd \u202e"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def keys_dir(tmp_path):
    return tmp_path / "keys"


def subject_keyring(keys_dir, clock, **config):
    keyring = Keyring.load_or_create(keys_dir)
    settings = SubjectsConfig(per_subject_keys=True, **config)
    return SubjectKeyring.load_or_create(keyring, settings, IntakeCounters(), clock)


def sealed(keys: SubjectKeyring, user_id: str | None, value: str, **fields) -> AuditEvent:
    event = AuditEvent(
        event_type=AuditEventType.DATA_READ, user_id=user_id, sensitive={"ssn": value}, **fields
    )
    return encrypt_sensitive(event, keys.keys_for(event))


def key_id_of(event: AuditEvent) -> str:
    return event.sensitive["ssn"].split(":")[1]


def opened(keys_dir, event: AuditEvent):
    """The value as a reader with the whole keys_dir (a fresh process) opens it."""
    return open_sensitive(event.event_id, event.sensitive, FieldKeys.load(keys_dir))["ssn"]


def test_each_subject_gets_its_own_key_and_no_subject_the_field_key(keys_dir, clock):
    keys = subject_keyring(keys_dir, clock)
    alice, alice_again, bob = sealed(keys, "alice", "1"), sealed(keys, "alice", "2"), sealed(keys, "bob", "3")
    nobody = sealed(keys, None, "4")

    assert key_id_of(alice) == key_id_of(alice_again) != key_id_of(bob)
    assert key_id_of(alice).startswith("ds-") and key_id_of(nobody).startswith("f-")
    assert [opened(keys_dir, event) for event in (alice, alice_again, bob, nobody)] == ["1", "2", "3", "4"]
    assert keys.counters.subject_keys == 2


def test_a_resource_or_details_field_names_the_subject_in_the_configured_order(keys_dir, clock):
    keys = subject_keyring(keys_dir, clock, fields=["details.patient.id", "user_id"])
    by_doctor = sealed(keys, "dr-who", "x", details={"patient": {"id": 456}})
    by_patient = sealed(keys, "456", "y")
    assert key_id_of(by_doctor) == key_id_of(by_patient)  # the integer 456 is subject "456"


def test_key_file_names_do_not_show_the_subject(keys_dir, clock):
    keys = subject_keyring(keys_dir, clock)
    for subject in ("alice", ODD, "x" * MAX_SUBJECT_CHARS):
        sealed(keys, subject, "v")
    names = " ".join(path.name for path in keys_dir.rglob("*"))
    assert "alice" not in names and "DROP" not in names and "xxxx" not in names
    assert len(list((keys_dir / "subjects").glob("ds-*.key"))) == 3


def test_a_subject_too_long_to_be_one_is_sealed_under_the_field_key(keys_dir, clock):
    keys = subject_keyring(keys_dir, clock)
    assert key_id_of(sealed(keys, "x" * (MAX_SUBJECT_CHARS + 1), "v")).startswith("f-")


def test_forget_makes_the_subjects_values_unreadable_and_leaves_the_others(keys_dir, clock):
    keys = subject_keyring(keys_dir, clock)
    alice, bob = sealed(keys, ODD, "alice's"), sealed(keys, "bob", "bob's")
    key_id = key_id_of(alice)
    raw_key = FieldKeys.load(keys_dir).subjects.read(key_id)
    wrapped = SubjectFiles(keys_dir).key(key_id).read_bytes()

    assert forget(keys_dir, ODD) == [key_id]

    assert opened(keys_dir, alice) == ERASED_VALUE
    assert opened(keys_dir, bob) == "bob's"
    # Nothing left in keys_dir holds the key, raw or wrapped.
    for path in keys_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert raw_key not in content and wrapped not in content, path
    assert forget(keys_dir, ODD) == []  # once is enough


def test_a_missing_key_without_its_tombstone_is_an_error_not_an_erasure(keys_dir, clock):
    keys = subject_keyring(keys_dir, clock)
    alice = sealed(keys, "alice", "v")
    SubjectFiles(keys_dir).key(key_id_of(alice)).unlink()
    with pytest.raises(DecryptionError, match="no such key"):
        opened(keys_dir, alice)


def test_a_running_intake_stops_using_a_forgotten_key_within_a_second(keys_dir, clock):
    """Until it looks again (at most a second), it may still seal under the destroyed key; after, it
    makes the subject a new key, which `forget` destroys in turn."""
    keys = subject_keyring(keys_dir, clock)
    first = sealed(keys, "alice", "before")
    forget(keys_dir, "alice")
    clock.now += 1.0
    after = sealed(keys, "alice", "after")

    assert key_id_of(after) != key_id_of(first)
    assert opened(keys_dir, first) == ERASED_VALUE
    assert opened(keys_dir, after) == "after"
    assert forget(keys_dir, "alice") == [key_id_of(after)]
    assert opened(keys_dir, after) == ERASED_VALUE


def test_a_restarted_intake_skips_the_forgotten_generation(keys_dir, clock):
    first = sealed(subject_keyring(keys_dir, clock), "alice", "before")
    forget(keys_dir, "alice")
    after = sealed(subject_keyring(keys_dir, clock), "alice", "after")
    assert key_id_of(after) != key_id_of(first)
    assert opened(keys_dir, after) == "after"


def test_past_max_keys_new_subjects_fall_back_to_the_field_key_counted(keys_dir, clock):
    keys = subject_keyring(keys_dir, clock, max_keys=2)
    ids = [key_id_of(sealed(keys, user, "v")) for user in ("a", "b", "c", "a")]
    assert [key_id.split("-")[0] for key_id in ids] == ["ds", "ds", "f", "ds"]
    assert keys.counters.subject_fallbacks == 1
    # The bound holds across a restart: the files are counted.
    assert key_id_of(sealed(subject_keyring(keys_dir, clock, max_keys=2), "d", "v")).startswith("f-")


def test_a_key_file_moved_to_another_subjects_name_does_not_open(keys_dir, clock):
    keys = subject_keyring(keys_dir, clock)
    alice, bob = sealed(keys, "alice", "a"), sealed(keys, "bob", "b")
    files = SubjectFiles(keys_dir)
    os.replace(files.key(key_id_of(alice)), files.key(key_id_of(bob)))
    with pytest.raises(DecryptionError, match="does not open under the master key"):
        opened(keys_dir, bob)


def test_forget_refuses_what_cannot_be_a_subject(keys_dir):
    for bad in ("", "x" * (MAX_SUBJECT_CHARS + 1), "bad\udcffbytes"):
        with pytest.raises(ValueError, match="subject"):
            forget(keys_dir, bad)


def test_forget_with_per_subject_keys_off_records_the_request_and_says_it_erased_nothing(tmp_path, capsys):
    from auditship.agents.config import parse_config
    from auditship.agents.subjects.forget import run_forget

    spool = tmp_path / "spool"
    spool.mkdir()
    config = parse_config(f'keys_dir = "{tmp_path / "keys"}"\nspool_dir = "{spool}"\n')
    assert run_forget(config, "alice") == 1
    out, err = capsys.readouterr()
    assert "no live subject key for 'alice'" in out and "per_subject_keys is off" in err
    assert len(list(spool.glob("auditship-forget-*.spool"))) == 1
