"""Data subjects (GDPR): who an event is about, per-subject keys, and erasure by crypto-shredding.

config.py is `[subjects]`; fields.py says which of an event's fields name its subject; keyring.py is the
intake's choice of key for an event's sensitive values (the subject's own key when `per_subject_keys`
is on); forget.py is `audit-agent subject forget`, which destroys a subject's keys and records it. The
key files are ondisk's (ondisk/subject_keys.py), which readers open without the agent; the export is
audit-query's (query/subject.py).
"""
