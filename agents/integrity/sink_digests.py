"""What a sink's digests have in common: when one is due, what every one carries from the ledger, and
what happens when one cannot be written.

A digest is due `digest_interval_s` after the previous one when the sink has written anything since; a
sink asks for one sooner (a part written) and gets it once the previous is `digest_min_interval_s` old;
a hole in the sequence, a rotation, a removal and the sink's close get one at once. Nothing here runs per
event: the sink calls `wrote` once per batch, `tick` while idle.

A digest that cannot be written (a full disk, keys_dir gone) stops nothing: what it would have said
stays pending and goes into the next one, tried again after `digest_min_interval_s`; the failure is
logged, once a minute at most. A removal (max_files, retention, compaction, quarantine) whose record
cannot be written does not happen: its caller is told, and tries again later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from auditship.agents.config import IntegrityConfig
from auditship.agents.integrity.chain import ChainWriter, Change
from auditship.agents.integrity.ledger import SeqLedger
from auditship.ondisk.errors import AuditshipError

logger = logging.getLogger("auditship.integrity")
FAILURE_LOG_INTERVAL_S = 60.0


class SinkDigests:
    """Subclasses say what is pending (`_change`) and forget it once digested (`_digested`)."""

    def __init__(
        self, writer: ChainWriter, settings: IntegrityConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.writer = writer
        self.ledger = SeqLedger(0)
        self._interval_s = settings.digest_interval_s
        self._min_interval_s = settings.digest_min_interval_s
        self._clock = clock
        self._last = clock()
        self._asked = False
        self._failure_logged = -FAILURE_LOG_INTERVAL_S
        self.started = False
        """Set by the subclass's start(), once it knows the chain's tip: no digest before that."""

    def tick(self) -> None:
        """Write the digest that is due, if one is."""
        if not self.started:
            return
        elapsed = self._clock() - self._last
        if (self._asked and elapsed >= self._min_interval_s) or (
            elapsed >= self._interval_s and self._has_pending()
        ):
            self.digest("parts" if self._asked else "interval")

    def ask(self) -> None:
        """Something was written that should be digested soon (a part)."""
        self._asked = True
        self.tick()

    def close(self) -> None:
        """The sink stops: a final digest, so that nothing it wrote is left undigested."""
        if self.started:
            self.digest("shutdown", final=True, always=True)

    def digest(self, reason: str, *, final: bool = False, always: bool = False) -> bool:
        """Write a digest of what is pending now (with `always`, even when nothing is); False when it could
        not be written (it stays pending)."""
        if not self.started:
            return False
        change = self._change(reason)
        gaps = self.ledger.pending_gaps()
        if change is None and not gaps and not self.ledger.changed and not always:
            self._last, self._asked = self._clock(), False
            return True
        change = change or Change(reason=reason)
        change.gaps = gaps
        change.seq_through = self.ledger.seq_through
        change.final = final
        if not self.append(change):
            return False
        self.ledger.digested(len(gaps), change.seq_through)
        self._digested(change)
        return True

    def append(self, change: Change) -> bool:
        """Append `change` now; False (logged) when it could not be."""
        try:
            self.writer.append(change)
        except (OSError, AuditshipError) as exc:
            self._last = self._clock()  # tried again after digest_min_interval_s, not at every tick
            self._asked = True
            if self._clock() - self._failure_logged >= FAILURE_LOG_INTERVAL_S:
                self._failure_logged = self._clock()
                logger.error(
                    "sink %s: cannot write its %s digest in %s: %s; what it would cover stays pending and "
                    "is digested when writing works again",
                    self.writer.sink,
                    change.reason,
                    self.writer.directory,
                    exc,
                )
            return False
        self._last, self._asked = self._clock(), False
        return True

    def _has_pending(self) -> bool:
        return self.ledger.changed

    def _change(self, reason: str) -> Change | None:
        """What the next digest adds besides the ledger's; None when nothing."""
        raise NotImplementedError

    def _digested(self, change: Change) -> None:
        """`change` is in the chain now: forget what was pending of it."""
        raise NotImplementedError
