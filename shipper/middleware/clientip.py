"""Who is on the other end: the client address behind trusted proxies, and a gRPC peer's address.

X-Forwarded-For is a list each proxy appends the address it saw to, so only the entries appended by
proxies we trust are believable. Reading right to left, we skip trusted proxies; the first address
that is not one is the client. A connection from an untrusted peer keeps the peer's address whatever
the header says, since anybody can write one.
"""

from __future__ import annotations

import functools
import ipaddress
from urllib.parse import unquote

from shipper.middleware.config import Network

# Each distinct address is parsed once; the cache bounds the memory that costs.
_CACHED_ADDRESSES = 4096


class ClientAddress:
    """Resolves the client address of a request given its peer and its X-Forwarded-For header."""

    def __init__(self, trusted_proxies: tuple[Network, ...]) -> None:
        self._trusted = trusted_proxies
        self._is_trusted = functools.lru_cache(maxsize=_CACHED_ADDRESSES)(self._check)

    def _check(self, address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self._trusted)

    def resolve(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's address: `peer`, or the X-Forwarded-For entry the trusted proxies vouch for."""
        if not forwarded_for or peer is None or not self._trusted or not self._is_trusted(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",")]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop if _is_address(hop) else peer
        # Every hop is a trusted proxy: the first of them is as close to the client as we can see.
        return hops[0]


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def grpc_peer_address(peer: str) -> str | None:
    """The address in a gRPC peer string: "ipv4:10.0.0.5:5443" -> "10.0.0.5",
    "ipv6:[::1]:5443" -> "::1" (newer gRPC writes the brackets percent-encoded, as in a URI); None for
    a unix socket or anything else."""
    family, _, rest = peer.partition(":")
    if family == "ipv4":
        return rest.rpartition(":")[0] or None
    if family == "ipv6":
        host = unquote(rest).rpartition(":")[0]
        return host.strip("[]") or None
    return None
