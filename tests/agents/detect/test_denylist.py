"""The deny list: addresses and networks, IPv4 and IPv6, read again when the file changes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from auditship.agents.detect.denylist import DenyList


def test_addresses_and_networks_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "deny.txt"
    path.write_text("203.0.113.9\n198.51.100.0/24 # office\n2001:db8::/32\n")
    deny = DenyList(path)
    assert [deny.listed(a) for a in ("203.0.113.9", "203.0.113.10", "198.51.100.77", "2001:db8::5")] == [
        True,
        False,
        True,
        True,
    ]
    assert deny.listed("::ffff:198.51.100.1")  # an IPv4 address as IPv6 sockets report it
    assert not deny.listed("not-an-address")


def test_a_changed_file_is_read_again_and_a_bad_change_keeps_the_list(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "deny.txt"
    path.write_text("203.0.113.9\n")
    deny = DenyList(path)
    assert deny.listed("203.0.113.9")
    path.write_text("198.51.100.7\n")
    os.utime(path, ns=(1, 1))  # a different mtime whatever the clock's resolution
    assert deny.refresh()
    assert (deny.listed("203.0.113.9"), deny.listed("198.51.100.7")) == (False, True)
    path.write_text("198.51.100.7\nnonsense\n")
    os.utime(path, ns=(2, 2))
    with caplog.at_level(logging.ERROR, "auditship.detect"):
        assert not deny.refresh()
    assert f"{path}:2: 'nonsense' is no address or network" in caplog.text
    assert deny.listed("198.51.100.7")
