"""Sensitive values become AES-GCM envelopes bound to their event and field, and come back typed."""

import base64
from datetime import UTC, datetime

import msgspec
import pytest

from auditship.agents.crypto import Keyring, decrypt_sensitive, encrypt_sensitive
from auditship.agents.crypto.blinding import load_blinding
from auditship.ondisk.envelope import associated_data_v1, blind_of, is_envelope
from auditship.ondisk.errors import DecryptionError
from shipper.event import AuditEvent, AuditEventType

VALUES = {
    "ssn": "123-45-6789",
    "pin": 4321,
    "card": {"number": "4111111111111111", "cvv": [1, 2, 3]},
    "ratio": 0.25,
    "blob": b"\x00\x01raw",
    "nothing": None,
    "seen_at": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
}


@pytest.fixture
def keyring(tmp_path):
    return Keyring.load_or_create(tmp_path / "keys")


def sensitive_event(**sensitive: object) -> AuditEvent:
    return AuditEvent(event_type=AuditEventType.DATA_READ, sensitive=dict(sensitive or VALUES))


def test_values_become_envelopes_and_come_back_with_their_types(keyring):
    """Every value is replaced by aesgcm2:<key id>:<token>; decryption restores value and type."""
    event = sensitive_event()
    sealed = encrypt_sensitive(event, keyring)

    for name, envelope in sealed.sensitive.items():
        assert is_envelope(envelope), name
        assert envelope.startswith(f"aesgcm2:{keyring.active_key_id}:")
    assert decrypt_sensitive(sealed, keyring).sensitive == VALUES
    assert event.sensitive == VALUES  # the input event is not changed


def test_no_plaintext_is_left_in_the_encoded_event(keyring):
    """Neither a value nor a recognisable fragment of it appears in the event's JSON."""
    sealed = encrypt_sensitive(sensitive_event(), keyring)
    encoded = msgspec.json.encode(sealed)
    for fragment in (b"123-45-6789", b"4111111111111111", b"4321"):
        assert fragment not in encoded


def test_the_token_is_nonce_then_ciphertext_and_tag(keyring):
    """The base64url token decodes to a 12-byte nonce + ciphertext + 16-byte tag, and nonces differ."""
    one = encrypt_sensitive(sensitive_event(ssn="x"), keyring).sensitive["ssn"]
    two = encrypt_sensitive(sensitive_event(ssn="x"), keyring).sensitive["ssn"]
    token = one.split(":")[2]
    blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert len(blob) == 12 + len(msgspec.msgpack.encode("x")) + 16
    assert one != two


def test_encrypting_twice_changes_nothing(keyring):
    """Envelopes are left as they are, so a second pass returns the very same event."""
    sealed = encrypt_sensitive(sensitive_event(), keyring)
    assert encrypt_sensitive(sealed, keyring) is sealed


def test_events_without_sensitive_values_pass_through_untouched(keyring):
    """No sensitive values: both directions return the same object, no copy made."""
    event = AuditEvent(event_type=AuditEventType.HEARTBEAT)
    assert encrypt_sensitive(event, keyring) is event
    assert decrypt_sensitive(event, keyring) is event


def test_a_tampered_envelope_fails_naming_event_field_and_key(keyring):
    """One changed character in the token fails authentication; the error names event, field and key."""
    sealed = encrypt_sensitive(sensitive_event(ssn="123-45-6789"), keyring)
    envelope = sealed.sensitive["ssn"]
    flipped = envelope[:-5] + ("A" if envelope[-5] != "A" else "B") + envelope[-4:]
    tampered = msgspec.structs.replace(sealed, sensitive={"ssn": flipped})

    with pytest.raises(DecryptionError) as caught:
        decrypt_sensitive(tampered, keyring)
    message = str(caught.value)
    assert sealed.event_id in message
    assert "'ssn'" in message
    assert keyring.active_key_id in message
    assert "authentication failed" in message


def test_an_envelope_moved_to_another_event_or_field_fails(keyring):
    """The event's hash and the field name are associated data: a copied envelope does not decrypt
    elsewhere."""
    sealed = encrypt_sensitive(sensitive_event(ssn="123-45-6789"), keyring)
    envelope = sealed.sensitive["ssn"]
    other_event = AuditEvent(event_type=AuditEventType.DATA_READ, sensitive={"ssn": envelope})
    other_field = msgspec.structs.replace(sealed, sensitive={"password": envelope})

    with pytest.raises(DecryptionError, match="moved here from another event or field"):
        decrypt_sensitive(other_event, keyring)
    with pytest.raises(DecryptionError, match="'password'"):
        decrypt_sensitive(other_field, keyring)


def test_a_missing_key_is_named(keyring, tmp_path):
    """An envelope under a key this keyring lacks fails with the key id and the missing file."""
    sealed = encrypt_sensitive(sensitive_event(ssn="x"), keyring)
    stranger = Keyring.load_or_create(tmp_path / "other-keys")

    with pytest.raises(DecryptionError, match=rf"key {keyring.active_key_id}\): no such key: .*missing"):
        decrypt_sensitive(sealed, stranger)


def test_old_envelopes_decrypt_after_rotation(keyring):
    """Rotation changes the key new envelopes use; envelopes under the old key still open."""
    before = encrypt_sensitive(sensitive_event(ssn="old"), keyring)
    new_key = keyring.rotate()
    after = encrypt_sensitive(sensitive_event(ssn="new"), keyring)

    assert after.sensitive["ssn"].startswith(f"aesgcm2:{new_key}:")
    assert decrypt_sensitive(before, keyring).sensitive == {"ssn": "old"}
    assert decrypt_sensitive(after, keyring).sensitive == {"ssn": "new"}


@pytest.mark.parametrize(
    "edit",
    [
        {"user_id": "mallory"},
        {"timestamp": datetime(2020, 1, 1, tzinfo=UTC)},
        {"details": {"amount": 1000}},
        {"message": "nothing to see"},
        {"compliance": ["SOX"]},
    ],
    ids=lambda edit: next(iter(edit)),
)
def test_editing_any_other_field_of_the_event_breaks_decryption(keyring, edit):
    """The envelope binds the event's hash: a changed user, time, detail, message or tag makes every
    envelope of the event fail, naming the event."""
    sealed = encrypt_sensitive(
        AuditEvent(
            event_type=AuditEventType.DATA_READ,
            user_id="alice",
            details={"amount": 10},
            sensitive={"ssn": "123-45-6789"},
        ),
        keyring,
    )
    edited = msgspec.structs.replace(sealed, **edit)

    with pytest.raises(DecryptionError, match=f"event {sealed.event_id}: .*'ssn'.*altered"):
        decrypt_sensitive(edited, keyring)


def test_adding_or_dropping_a_sensitive_field_breaks_decryption_of_the_others(keyring):
    """The sensitive field names are in the hash: a value slipped in beside the envelopes, or one of
    them deleted, is seen when the others are opened."""
    sealed = encrypt_sensitive(sensitive_event(ssn="x", pin=1), keyring)
    added = msgspec.structs.replace(sealed, sensitive=sealed.sensitive | {"note": "planted"})
    dropped = msgspec.structs.replace(sealed, sensitive={"ssn": sealed.sensitive["ssn"]})

    for tampered in (added, dropped):
        with pytest.raises(DecryptionError, match="'ssn'"):
            decrypt_sensitive(tampered, keyring)


def test_an_aesgcm1_envelope_of_an_older_agent_still_opens(keyring):
    """Envelopes written before the event hash was bound (event id and field name only) still decrypt."""
    event = sensitive_event(ssn="old")
    nonce = b"\x01" * 12
    ciphertext = keyring.cipher(keyring.active_key_id).encrypt(
        nonce, msgspec.msgpack.encode("old"), associated_data_v1(event.event_id, "ssn")
    )
    token = base64.urlsafe_b64encode(nonce + ciphertext).rstrip(b"=").decode()
    old = msgspec.structs.replace(event, sensitive={"ssn": f"aesgcm1:{keyring.active_key_id}:{token}"})

    assert is_envelope(old.sensitive["ssn"])
    assert decrypt_sensitive(old, keyring).sensitive == {"ssn": "old"}


def test_the_blind_index_is_in_the_envelope_and_bound_by_it(keyring):
    """A field the blinding names carries its blind index after the envelope; others carry none. The
    index is in the associated data: one swapped for another value's fails decryption."""
    blinding = load_blinding(keyring.keys_dir, ["ssn"])
    one = encrypt_sensitive(sensitive_event(ssn="123-45-6789", pin=1), keyring, blinding)
    other = encrypt_sensitive(sensitive_event(ssn="987-65-4321", pin=1), keyring, blinding)

    token = blind_of(one.sensitive["ssn"])
    assert token == blinding.key.token("ssn", " 123-45-6789") != blind_of(other.sensitive["ssn"])
    assert blind_of(one.sensitive["pin"]) is None
    assert decrypt_sensitive(one, keyring).sensitive == {"ssn": "123-45-6789", "pin": 1}
    swapped = one.sensitive["ssn"].replace(token, blind_of(other.sensitive["ssn"]))
    with pytest.raises(DecryptionError, match="'ssn'"):
        decrypt_sensitive(msgspec.structs.replace(one, sensitive=one.sensitive | {"ssn": swapped}), keyring)


def test_blind_indexes_differ_by_field_and_key(keyring, tmp_path):
    """The field name is in the HMAC, and another keys_dir's key gives other indexes."""
    blinding = load_blinding(keyring.keys_dir, ["ssn", "patient_id"])
    (tmp_path / "elsewhere").mkdir()
    elsewhere = load_blinding(tmp_path / "elsewhere", ["ssn"])
    assert blinding.key.token("ssn", "42") == blinding.key.token("ssn", 42)
    assert blinding.key.token("ssn", "42") != blinding.key.token("patient_id", "42")
    assert blinding.key.token("ssn", "42") != elsewhere.key.token("ssn", "42")
