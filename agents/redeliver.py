"""`audit-agent redeliver SINK`: offer a sink's dead letters to its destination again, once what made
the destination refuse them (a token, an index, a URL) is fixed in the config.

deadletters/<sink>.jsonl is first renamed to <sink>.jsonl.redelivering, so dead letters the running
agent writes meanwhile go to a fresh file and no letter is offered twice. The letters are offered in
batches of the sink's batch size, through the same sink the agent builds from the same config. What is
refused again, and what the destination would not take within `attempts` tries (it stayed down), is
appended back to deadletters/<sink>.jsonl with the latest reason; then the claimed file is deleted. A
run cut short leaves the claimed file behind: the next run offers its letters (and the newer ones wait
for the run after that).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import msgspec

from auditship.agents.backoff import compute_backoff
from auditship.agents.config import AgentConfig
from auditship.agents.logs import configure_logging
from auditship.agents.sinks.base import Delivery, Entry, Partial, Refused, Sink
from auditship.agents.sinks.registry import SINKS
from auditship.agents.sinks.runner import DeadLetter, build_sink, dead_letter_lines
from auditship.ondisk.data_layout import DataLayout
from shipper.event import AuditEvent

log = logging.getLogger("auditship.redeliver")
CLAIMED_SUFFIX = ".redelivering"
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 10.0
EXIT_USAGE = 2

_letter_decoder = msgspec.json.Decoder(DeadLetter)
_event_decoder = msgspec.json.Decoder(AuditEvent)


class Redelivery(msgspec.Struct):
    """What one run did with a sink's dead letters."""

    offered: int = 0
    delivered: int = 0
    refused: int = 0
    """Refused again: kept, with the new reason."""
    undelivered: int = 0
    """Not taken within the attempts (the destination stayed down): kept, for the next run."""
    unreadable: int = 0
    """Lines that are not dead letters: kept as they were."""

    @property
    def kept(self) -> int:
        return self.refused + self.undelivered + self.unreadable


class _Letters(msgspec.Struct):
    entries: list[Entry]
    unreadable: list[bytes]


def dead_letter_path(config: AgentConfig, sink_name: str) -> Path:
    return DataLayout(config.data_path).deadletters / f"{sink_name}.jsonl"


def redeliver(config: AgentConfig, sink_name: str, attempts: int = 5) -> Redelivery:
    path = dead_letter_path(config, sink_name)
    claimed = path.with_name(path.name + CLAIMED_SUFFIX)
    if path.exists() and not claimed.exists():
        path.rename(claimed)  # else a run was cut short: its letters go first, the newer ones next time
    if not claimed.exists():
        return Redelivery()
    data = claimed.read_bytes()
    letters = _read(data)
    built = build_sink(sink_name, config)
    sink = built.sink
    result = Redelivery(offered=len(letters.entries), unreadable=len(letters.unreadable))
    kept: list[bytes] = list(letters.unreadable)
    sink.open()
    try:
        for start in range(0, len(letters.entries), built.batch_size):
            batch = letters.entries[start : start + built.batch_size]
            while batch:  # bounded: each offer settles at least one letter
                taken, again = _offer(sink, batch, attempts)
                settled, batch = batch[:taken], batch[taken:]
                if again is None:
                    result.undelivered += len(settled)
                    reason = f"not taken by the destination in {attempts} attempts of `audit-agent redeliver`"
                    again = Refused(settled, [reason] * len(settled))
                else:
                    result.refused += len(again.entries)
                result.delivered += len(settled) - len(again.entries)
                kept += dead_letter_lines(again)
    finally:
        sink.close()
    # The agent may have appended to the file in the instant before it was claimed: keep that too.
    kept_bytes = b"".join(line + b"\n" for line in kept) + claimed.read_bytes()[len(data) :]
    if kept_bytes:
        with path.open("ab") as file:
            file.write(kept_bytes)
        path.chmod(0o600)
    claimed.unlink()
    return result


def _offer(sink: Sink, batch: list[Entry], attempts: int) -> tuple[int, Refused | None]:
    """Offer `batch` until the destination settles it, at most `attempts` times: how many of its first
    letters were settled (all, unless the sink took a share of them: Partial), and what of those it
    refused (nothing, when it took all), or None when it never took the batch."""
    for attempt in range(1, attempts + 1):
        outcome = sink.write_batch(batch)
        if isinstance(outcome, Partial):
            return outcome.taken, outcome.refused
        if outcome is Delivery.DELIVERED:
            return len(batch), Refused([], [])
        if outcome is Delivery.REJECTED:
            return len(batch), Refused(batch, ["the destination refused the batch"] * len(batch))
        if isinstance(outcome, Refused):
            return len(batch), outcome
        if attempt < attempts:
            delay = compute_backoff(attempt, BACKOFF_BASE_S, BACKOFF_CAP_S)
            time.sleep(max(delay, sink.retry_after_s))
    return len(batch), None


def _read(data: bytes) -> _Letters:
    letters = _Letters([], [])
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            letter = _letter_decoder.decode(line)
            letters.entries.append(Entry(letter.seq, _event_decoder.decode(letter.event)))
        except msgspec.DecodeError as exc:
            log.warning("a dead letter line is unreadable (%s); it is kept as it is", exc)
            letters.unreadable.append(line)
    return letters


def run_redeliver(config: AgentConfig, sink_name: str, attempts: int) -> int:
    """The command: 0 when no dead letter is left, 1 when some are, 2 for an unknown sink."""
    if sink_name not in SINKS:
        print(
            f"audit-agent redeliver: unknown sink {sink_name!r}; the sinks are {', '.join(SINKS)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    configure_logging(config.log_level, "redeliver")
    result = redeliver(config, sink_name, attempts)
    path = dead_letter_path(config, sink_name)
    if not result.offered and not result.unreadable:
        print(f"sink {sink_name}: no dead letters in {path}")
        return 0
    print(
        f"sink {sink_name}: {result.offered} dead letters offered, {result.delivered} delivered, "
        f"{result.refused} refused again, {result.undelivered} not taken (destination down), "
        f"{result.unreadable} unreadable"
    )
    if result.kept:
        print(f"{result.kept} kept in {path}", file=sys.stderr)
        return 1
    return 0
