"""The client's address: X-Forwarded-For believed only through trusted proxies; gRPC peer strings."""

from __future__ import annotations

import ipaddress

import pytest

from shipper.middleware.clientip import ClientAddress, grpc_peer_address

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    """Anybody can write X-Forwarded-For: with no proxy trusted, the peer is the client."""
    assert ClientAddress(()).resolve("203.0.113.5", "198.51.100.1") == "203.0.113.5"


def test_from_an_untrusted_peer_the_header_is_ignored() -> None:
    """A client connecting directly cannot claim another address."""
    assert ClientAddress(TRUSTED).resolve("203.0.113.5", "198.51.100.1") == "203.0.113.5"


def test_the_first_untrusted_address_from_the_right_is_the_client() -> None:
    """Trusted hops are skipped right to left; what the client wrote further left is not believed."""
    resolve = ClientAddress(TRUSTED).resolve
    assert resolve("10.0.0.2", "203.0.113.9") == "203.0.113.9"
    assert resolve("10.0.0.2", "198.51.100.1, 203.0.113.9, 10.0.0.7") == "203.0.113.9"
    assert resolve("127.0.0.1", " 203.0.113.9 ,10.1.1.1") == "203.0.113.9"


def test_when_every_hop_is_trusted_the_leftmost_is_the_client() -> None:
    """An internal caller behind internal proxies."""
    assert ClientAddress(TRUSTED).resolve("10.0.0.2", "10.9.9.9, 10.0.0.7") == "10.9.9.9"


def test_a_hop_that_is_not_an_address_leaves_the_peer() -> None:
    """A proxy that wrote "unknown" tells us nothing to believe."""
    assert ClientAddress(TRUSTED).resolve("10.0.0.2", "unknown") == "10.0.0.2"


def test_no_header_or_no_peer() -> None:
    """Nothing to resolve: the peer, or None."""
    assert ClientAddress(TRUSTED).resolve("10.0.0.2", None) == "10.0.0.2"
    assert ClientAddress(TRUSTED).resolve(None, "203.0.113.9") is None


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:10.0.0.5:5443", "10.0.0.5"),
        ("ipv6:[::1]:5443", "::1"),
        ("ipv6:%5B::1%5D:5443", "::1"),
        ("unix:/run/app.sock", None),
        ("", None),
    ],
)
def test_a_grpc_peer_string_gives_its_address(peer: str, address: str | None) -> None:
    """IPv4 and IPv6 (bracketed, as gRPC writes it, percent-encoded or not); nothing for a unix socket."""
    assert grpc_peer_address(peer) == address
