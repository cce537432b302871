"""In-process signals of an attack in progress, each raising a SUSPICIOUS_ACTIVITY event.

- `auth_failure_burst`: `threshold` authentication failures from one address within `window_s`.
- `path_traversal`: `..` segments, encoded dots or NUL bytes, well-known system files in a path or query.
- `sql_injection`: tautologies after a quote, UNION SELECT, stacked statements, quote-then-comment,
  timing functions.

A path made only of letters, digits and `/_~-` with no query string is not scanned: no pattern but a
bare `/etc/passwd` can match one, and that alone reaches nothing. These are cheap shape checks, not a
WAF: they flag probing so that it shows up in the audit trail, and they may both miss obfuscated
attacks and flag odd but harmless URLs. Memory is bounded: the burst detector tracks at most
`max_sources` addresses (the least recently failing are forgotten first), each with at most
`threshold` timestamps.
"""

from __future__ import annotations

import collections
import re
import threading
from typing import NamedTuple
from urllib.parse import unquote_plus

# Only this much of a path or query is scanned, so a huge URL costs no more than a long one.
SCAN_LIMIT = 4096

_TRAVERSAL = re.compile(
    r"(?:^|[/\\=])\.\.(?:[/\\]|$)"  # a ".." segment, or one starting a query value
    r"|%2e%2e|%2e\.|\.%2e|%252e|%c0%ae|\.\.%2f|\.\.%5c"  # dots or separators encoded, once or twice
    r"|%00|\x00"  # NUL, to cut a path short
    r"|/etc/(?:passwd|shadow)\b|\bwin\.ini\b",
    re.IGNORECASE,
)
_SQL_INJECTION = re.compile(
    r"""['"]\s*(?:or|and)\s+['"\d]"""  # ' OR '1'='1, " and 1=1
    r"|\bor\s+1\s*=\s*1\b"
    r"|\bunion(?:\s+all)?\s+select\b"
    r"|;\s*(?:drop|delete|insert|update|alter|truncate|exec)\b"
    r"""|['"]\s*(?:--|#|/\*)"""  # a quote closed, the rest commented out
    r"|\b(?:sleep|pg_sleep|benchmark)\s*\(|\bwaitfor\s+delay\b",
    re.IGNORECASE,
)


class Signal(NamedTuple):
    """One finding: which check fired and the text that made it fire."""

    name: str
    evidence: str


# What most paths consist of, and none of the patterns can match: such a path is not scanned further.
# Decoding only ever adds characters outside this set (".", "'", spaces...), so the decoded path decides.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/_~-]*")


def scan_request(path: str, raw_path: bytes, query: bytes) -> Signal | None:
    """Check a request's decoded path, undecoded path and query string for traversal and injection."""
    if not query and _PLAIN_PATH.fullmatch(path):
        return None
    raw = raw_path[:SCAN_LIMIT].decode("latin-1")
    decoded_query = unquote_plus(query[:SCAN_LIMIT].decode("latin-1")) if query else ""
    for text in (path[:SCAN_LIMIT], raw, query[:SCAN_LIMIT].decode("latin-1")):
        found = _TRAVERSAL.search(text)
        if found:
            return Signal("path_traversal", found.group())
    for text in (path[:SCAN_LIMIT], decoded_query):
        found = _SQL_INJECTION.search(text)
        if found:
            return Signal("sql_injection", found.group())
    return None


class AuthFailureBursts:
    """Counts authentication failures per source address in a sliding window.

    `failure(source, now)` returns True for the failure that makes `threshold` within `window_s`;
    the address's count then starts again, so a sustained attack raises one signal per `threshold`
    failures rather than one per request. Safe to call from many threads.
    """

    def __init__(self, threshold: int, window_s: float, max_sources: int = 10_000) -> None:
        self.threshold = threshold
        self.window_s = window_s
        self.max_sources = max_sources
        self._recent: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many addresses are tracked now."""
        return len(self._recent)

    def failure(self, source: str, now: float) -> bool:
        with self._lock:
            times = self._recent.get(source)
            if times is None:
                if len(self._recent) >= self.max_sources:
                    self._recent.popitem(last=False)
                times = self._recent[source] = collections.deque(maxlen=self.threshold)
            else:
                self._recent.move_to_end(source)
            times.append(now)
            if len(times) == self.threshold and now - times[0] <= self.window_s:
                times.clear()
                return True
            return False
