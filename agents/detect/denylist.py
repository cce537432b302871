"""The deny list: addresses and networks whose every event is an alert (`denied_address`).

A text file, one entry a line: an address (`203.0.113.9`, `2001:db8::1`) or a network in CIDR
(`198.51.100.0/24`); `#` starts a comment, blank lines are skipped. A line that is neither is an error
naming the file and the line. The detector reads it again when it changes; a change that does not
parse is logged and the list it had stays.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

log = logging.getLogger("auditship.detect")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
CACHE_MAX = 65536
"""Addresses whose membership is remembered (each looked up in the networks once), at most."""


class DenyListError(ValueError):
    pass


def parse(text: str, source: str) -> list[Network]:
    """The entries of a deny list; DenyListError naming `source` and the line of one that is no
    address or network."""
    networks: list[Network] = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise DenyListError(f"{source}:{number}: {entry!r} is no address or network ({exc})") from None
    return networks


def read(path: Path) -> list[Network]:
    """The entries of the file at `path`; DenyListError when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DenyListError(f"{path}: cannot read the deny list: {exc}") from exc
    return parse(text, str(path))


class DenyList:
    """Whether an address is listed; `refresh()` takes in a change of the file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._networks: list[Network] = []
        self._cache: dict[str, bool] = {}
        self._stamp: tuple[int, int] | None = None
        if path is not None:
            self._networks = read(path)
            self._stamp = _stamp(path)

    def __len__(self) -> int:
        return len(self._networks)

    @property
    def networks(self) -> list[Network]:
        return list(self._networks)

    def listed(self, address: str) -> bool:
        found = self._cache.get(address)
        if found is None:
            found = self._lookup(address)
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[address] = found
        return found

    def _lookup(self, address: str) -> bool:
        if not self._networks:
            return False
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False  # not an address (a host name): no network holds it
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped
        return any(parsed in network for network in self._networks)

    def refresh(self) -> bool:
        """Read the file again if it changed since it was read; whether the list changed."""
        if self.path is None:
            return False
        try:
            stamp = _stamp(self.path)
        except OSError as exc:
            if self._stamp is not None:
                log.error("deny list %s: %s; the list read before stays", self.path, exc.strerror)
            self._stamp = None
            return False
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            networks = read(self.path)
        except DenyListError as exc:
            log.error("%s; the list read before stays", exc)
            return False
        self._networks = networks
        self._cache.clear()
        log.info("deny list %s: %d entries", self.path, len(networks))
        return True


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_mtime_ns, status.st_size
