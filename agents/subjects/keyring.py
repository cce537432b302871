"""The intake's choice of key for an event's sensitive values when `[subjects] per_subject_keys` is on:
the key of the event's data subject (agents/subjects/fields.py), made on first use, or the field key
when the event names no subject.

A subject key is made once (ondisk/subject_keys.py: wrapped under the master key, published whole
under its keyed-hash name) and its cipher kept, the CACHED_CIPHERS most recent ones. `subject forget`
runs in another process: it writes a tombstone in `subjects/erased/` and then destroys the key file. The
keyring looks at that directory (one stat) at most once a second and, when it changed, drops every
cipher and subject it holds; the next value of a forgotten subject finds the tombstone and is sealed
under a new key (the next generation). So values taken in the second after a forget may still go under
the destroyed key, and are erased with it; none after that.

A NEW key rather than refusing the subject's later events, or sealing them to nobody: the intake never
drops what a service sent (the trail must say what happened), a user id may come back (an account
made again, a subject who returns), and an erasure request covers what was held when it was made.
Forgetting the subject again erases the new generation too.

When a key cannot be made (`max_keys` reached, a failing disk), the values go under the field key:
never refused, never in clear, but not erasable per subject; counted in `subject_fallbacks` and logged
(at most once a minute).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from auditship.agents.crypto.key_files import publish
from auditship.agents.crypto.keyring import Keyring
from auditship.agents.intake.counters import IntakeCounters
from auditship.agents.subjects.config import SubjectsConfig
from auditship.agents.subjects.fields import subject_of
from auditship.ondisk.errors import KeyringError, SubjectErasedError
from auditship.ondisk.files import make_private_dirs
from auditship.ondisk.subject_keys import (
    CACHED_CIPHERS,
    KEY_BYTES,
    MAX_GENERATIONS,
    SUBJECT_KEY_ID,
    SubjectFiles,
)
from shipper.event import AuditEvent

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

logger = logging.getLogger("auditship.crypto")

ERASURE_CHECK_INTERVAL_S = 1.0
FALLBACK_LOG_INTERVAL_S = 60.0


class SubjectKey:
    """One subject's key, as `encrypt_sensitive` asks for keys (agents/crypto/fields.py)."""

    def __init__(self, key_id: str, cipher: AESGCM) -> None:
        self.key_id = key_id
        self.cipher = cipher

    def encryption_key(self, values: int) -> tuple[str, AESGCM]:
        return self.key_id, self.cipher


class SubjectKeyring:
    def __init__(
        self,
        keyring: Keyring,
        config: SubjectsConfig,
        counters: IntakeCounters,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keyring = keyring
        self._clock = clock
        self.files = SubjectFiles(keyring.keys_dir)
        self._ciphers = keyring.subjects
        self._fields = config.parsed_fields()
        self._max_keys = config.max_keys
        self.counters = counters
        self._keys: dict[str, SubjectKey] = {}
        """By subject, the most recently used last; at most CACHED_CIPHERS."""
        self._erased_stamp = self._stamp()
        self._next_check = clock() + ERASURE_CHECK_INTERVAL_S
        self._next_fallback_log = 0.0
        self.count = sum(1 for p in self.files.directory.glob("ds-*.key") if SUBJECT_KEY_ID.fullmatch(p.stem))

    @classmethod
    def load_or_create(
        cls,
        keyring: Keyring,
        config: SubjectsConfig,
        counters: IntakeCounters,
        clock: Callable[[], float] = time.monotonic,
    ) -> SubjectKeyring:
        """The subject keys of the keyring's keys_dir, its master key made when there is none."""
        files = SubjectFiles(keyring.keys_dir)
        try:
            make_private_dirs(files.erased)
        except OSError as exc:
            raise KeyringError(f"{files.erased}: cannot create: {exc.strerror}") from exc
        if not files.master.exists():
            publish(files.master, os.urandom(KEY_BYTES))
        keyring.subjects.master()  # fail at start-up, naming the file, rather than at the first event
        return cls(keyring, config, counters, clock)

    def keys_for(self, event: AuditEvent) -> SubjectKey | Keyring:
        """What seals `event`'s sensitive values: its subject's key, else the field keyring."""
        subject = subject_of(self._fields, event)
        if subject is None:
            return self.keyring
        self._follow_erasures()
        key = self._keys.pop(subject, None)
        if key is None:
            try:
                key = self._current(subject)
            except KeyringError as exc:
                self._fallback(f"cannot make or read a subject key: {exc}")
                return self.keyring
            if key is None:
                self._fallback(f"subjects.max_keys ({self._max_keys}) subject keys exist")
                return self.keyring
        self._keys[subject] = key
        if len(self._keys) > CACHED_CIPHERS:
            del self._keys[next(iter(self._keys))]
        return key

    def _current(self, subject: str) -> SubjectKey | None:
        """The subject's live key: the first generation not destroyed, made when it does not exist yet
        (None when max_keys forbids it)."""
        master = self._ciphers.master()
        for generation in range(MAX_GENERATIONS):
            key_id = master.key_id(subject, generation)
            if self.files.tombstone(key_id).exists():
                continue
            if not self.files.key(key_id).exists():
                if self.count >= self._max_keys:
                    return None
                key = os.urandom(KEY_BYTES)
                if publish(self.files.key(key_id), master.wrap(key_id, key)):
                    self.count += 1
                    self.counters.subject_keys += 1
                    return SubjectKey(key_id, self._ciphers.remember(key_id, key))
            try:
                return SubjectKey(key_id, self._ciphers.cipher(key_id))
            except SubjectErasedError:
                continue  # forgotten this very moment: the next generation
        raise KeyringError(f"{self.files.directory}: a subject has had {MAX_GENERATIONS} keys destroyed")

    def _follow_erasures(self) -> None:
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + ERASURE_CHECK_INTERVAL_S
        stamp = self._stamp()
        if stamp != self._erased_stamp:
            self._erased_stamp = stamp
            self._keys.clear()
            self._ciphers.drop()
            logger.info("subject keys were destroyed (subject forget): their subjects get new keys")

    def _stamp(self) -> tuple[int, int] | None:
        try:
            status = self.files.erased.stat()
        except OSError:
            return None
        return status.st_ino, status.st_mtime_ns

    def _fallback(self, reason: str) -> None:
        self.counters.subject_fallbacks += 1
        now = self._clock()
        if now >= self._next_fallback_log:
            self._next_fallback_log = now + FALLBACK_LOG_INTERVAL_S
            logger.error(
                "%s: sensitive values sealed under the field key instead, not erasable per subject "
                "(%d so far; counted in subject_fallbacks)",
                reason,
                self.counters.subject_fallbacks,
            )
