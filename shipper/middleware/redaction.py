"""Headers and gRPC metadata as loggable maps with credentials redacted, and truncated bodies.

A value is redacted when its name is one the configuration lists (ALWAYS_REDACTED and
`redact_headers`) or looks like a credential's (CREDENTIAL_NAME: X-Api-Key, X-Auth-Token,
X-Amz-Security-Token, X-CSRF-Token...): a service's own credential headers are redacted without being
listed. URLs in Referer, Location and Content-Location keep their path but lose their query and
fragment, where tokens travel (`?token=...`, `#access_token=...`).

Header values are decoded as Latin-1, which maps every byte to a character, so a header that is
not UTF-8 is still logged rather than dropped. Repeated header lines are joined with ", " as
RFC 9110 allows. Binary gRPC metadata (keys ending in `-bin`) is logged as its length only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"

# Parts of a lower-case header name that mark a credential.
CREDENTIAL_NAME = re.compile(r"token|key|secret|auth|session|passw|csrf|xsrf|cookie|signature|credential")
# Headers whose value is a URL.
_URL_HEADERS = frozenset({"referer", "location", "content-location"})
_QUERY_OR_FRAGMENT = re.compile(r"[?#].*", re.DOTALL)


def _merge(pairs: Iterable[tuple[str, str]], redacted: frozenset[str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in pairs:
        if name in redacted or CREDENTIAL_NAME.search(name):
            text = REDACTED
        elif name in _URL_HEADERS:
            text = _QUERY_OR_FRAGMENT.sub(f"?{REDACTED}", value, count=1)
        else:
            text = value
        merged[name] = f"{merged[name]}, {text}" if name in merged else text
    return merged


def http_headers(raw: Iterable[tuple[bytes, bytes]], redacted: frozenset[str]) -> dict[str, str]:
    """ASGI headers (lower-case byte names) as {name: value}, the `redacted` names' values replaced."""
    return _merge(
        ((name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in raw), redacted
    )


def grpc_metadata(metadata: Iterable[tuple[str, str | bytes]], redacted: frozenset[str]) -> dict[str, str]:
    """gRPC invocation metadata as {key: value}, the `redacted` keys' values replaced."""
    return _merge(
        (
            (key.lower(), value if isinstance(value, str) else f"<{len(value)} bytes>")
            for key, value in metadata
        ),
        redacted,
    )


def excerpt(data: bytes | bytearray, total: int, limit: int) -> dict[str, object]:
    """At most `limit` bytes of a body as text, with its full size and whether it was cut."""
    return {
        "text": bytes(data[:limit]).decode("utf-8", errors="replace"),
        "size": total,
        "truncated": total > limit,
    }
