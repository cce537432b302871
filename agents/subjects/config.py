"""`[subjects]`: which fields name an event's data subject, and whether each subject's sensitive values
are sealed under a key of their own, which `audit-agent subject forget` can destroy."""

from __future__ import annotations

import msgspec

from auditship.agents.section import Positive, Section
from auditship.agents.subjects.fields import DEFAULT_FIELDS, SubjectField, parse_field


class SubjectsConfig(Section):
    fields: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_FIELDS))
    """What names an event's subject (agents/subjects/fields.py), in order: the first one an event has
    chooses the key of its sensitive values; `audit-query subject export` finds an event by any of
    them, and always by user_id."""
    per_subject_keys: bool = False
    """Seal an event's sensitive values under its subject's own key (keys_dir/subjects/), so that
    `audit-agent subject forget` makes them unreadable; values of an event with no subject go under the
    field key as before."""
    max_keys: Positive = 100_000
    """Subject keys the intake makes, at most (one small file each). Past it, values of subjects with
    no key yet go under the field key, counted (`subject_fallbacks`) and logged."""

    def parsed_fields(self) -> list[SubjectField]:
        return [parse_field(text) for text in self.fields]

    def check(self, key: str) -> None:
        if not self.fields:
            raise ValueError(f"{key}.fields: name at least one field, such as user_id")
        try:
            self.parsed_fields()
        except ValueError as exc:
            raise ValueError(f"{key}.fields: {exc}") from None
