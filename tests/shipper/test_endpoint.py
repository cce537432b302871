"""Where emitters and a user's own agent meet: never in a directory another user made first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shipper import endpoint


@pytest.fixture
def tmp_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """/tmp as the fallback's parent, but a test's own, and no XDG_RUNTIME_DIR."""
    monkeypatch.setattr(endpoint, "_TMP", tmp_path)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return tmp_path


def test_without_xdg_the_tmp_directory_is_made_private_and_used(tmp_base: Path) -> None:
    """Made 0700 by us, then used."""
    found = endpoint.user_runtime_dir()
    assert found == tmp_base / f"auditship-{os.getuid()}"
    assert found.stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory of another user's needs root")
def test_a_tmp_directory_another_user_made_first_is_not_used(tmp_base: Path, caplog) -> None:
    """Squatted (owned by uid 4242): the emitter goes to ~/.cache/auditship instead, and says why."""
    squatted = tmp_base / f"auditship-{os.getuid()}"
    squatted.mkdir(mode=0o777)
    os.chown(squatted, 4242, 4242)
    assert endpoint.user_runtime_dir() == Path.home() / ".cache" / "auditship"
    assert "not this user's own directory" in caplog.text


def test_a_link_where_the_tmp_directory_goes_is_not_followed(tmp_base: Path) -> None:
    """A link to a directory of ours is still not ours to trust: someone else put it there."""
    target = tmp_base / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_base / f"auditship-{os.getuid()}").symlink_to(target)
    assert endpoint.user_runtime_dir() == Path.home() / ".cache" / "auditship"


def test_a_tmp_directory_others_may_write_is_not_used(tmp_base: Path) -> None:
    """Ours but group- or world-writable: anyone could bind the sockets first."""
    open_dir = tmp_base / f"auditship-{os.getuid()}"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    assert endpoint.user_runtime_dir() == Path.home() / ".cache" / "auditship"
