"""Which of an event's fields name the data subject it is about: `[subjects] fields`.

    user_id            the user who acted (an event *by* the subject)
    resource:TYPE      resource_id, when resource_type is TYPE ("resource:user", "resource:patient")
    details.NAME[.N]   a value in `details` ("details.patient_id"), a string or an integer

A subject is a string of at most MAX_SUBJECT_CHARS characters; an integer counts as its decimal
digits (`details.patient_id = 456` is subject "456"), anything else is no subject.
"""

from __future__ import annotations

import re
from typing import Any, Literal, NamedTuple

from auditship.ondisk.subject_keys import MAX_SUBJECT_CHARS
from shipper.event import AuditEvent

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_DEPTH = 8
DEFAULT_FIELDS = ["resource:user", "user_id"]


class SubjectField(NamedTuple):
    kind: Literal["user_id", "resource", "details"]
    resource_type: str = ""
    path: tuple[str, ...] = ()

    def value(self, event: AuditEvent) -> str | None:
        """The subject this field names in `event`; None when it names none."""
        found: Any
        if self.kind == "user_id":
            found = event.user_id
        elif self.kind == "resource":
            found = event.resource_id if event.resource_type == self.resource_type else None
        else:
            found = event.details
            for name in self.path:
                found = found.get(name) if isinstance(found, dict) else None
        if isinstance(found, int) and not isinstance(found, bool):
            found = str(found)
        if isinstance(found, str) and 0 < len(found) <= MAX_SUBJECT_CHARS:
            return found
        return None


def parse_field(text: str) -> SubjectField:
    """`text` as a SubjectField; ValueError saying what is wrong and what is allowed."""
    if text == "user_id":
        return SubjectField("user_id")
    kind = text.removeprefix("resource:")
    if text.startswith("resource:") and 0 < len(kind) <= 255:
        return SubjectField("resource", resource_type=kind)
    if text.startswith("details."):
        path = tuple(text.removeprefix("details.").split("."))
        if len(path) <= MAX_DEPTH and all(NAME.fullmatch(name) for name in path):
            return SubjectField("details", path=path)
    raise ValueError(
        f"{text[:80]!r} is not a subject field: user_id, resource:TYPE, or details.NAME (names of letters, "
        f"digits and _, at most {MAX_DEPTH} deep)"
    )


def subject_of(fields: list[SubjectField], event: AuditEvent) -> str | None:
    """The subject of `event`: what the first of `fields` that names one names."""
    for field in fields:
        if (subject := field.value(event)) is not None:
            return subject
    return None
