"""`[subjects]`: what names a subject is checked when the config is read, naming the key."""

import pytest

from auditship.agents.config import parse_config
from auditship.agents.errors import ConfigError
from auditship.agents.subjects.fields import SubjectField, parse_field


def test_the_defaults_name_the_user_resource_then_the_actor():
    config = parse_config("")
    assert config.subjects.per_subject_keys is False
    assert config.subjects.parsed_fields() == [
        SubjectField("resource", resource_type="user"),
        SubjectField("user_id"),
    ]


def test_each_kind_of_field_parses():
    assert parse_field("details.patient.id") == SubjectField("details", path=("patient", "id"))
    assert parse_field("resource:patient") == SubjectField("resource", resource_type="patient")


@pytest.mark.parametrize(
    "fields",
    [
        '["details."]',
        '["details.a-b"]',
        '["resource:"]',
        '["email"]',
        "[]",
        '["details.' + ".".join(["a"] * 9) + '"]',
    ],
)
def test_a_bad_field_is_a_config_error_naming_the_key(fields):
    with pytest.raises(ConfigError, match=r"subjects\.fields: "):
        parse_config(f"[subjects]\nfields = {fields}\n")
