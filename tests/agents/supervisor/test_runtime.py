"""The agent prepares only directories of its own, and never writes through a link planted in them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from auditship.agents.errors import ConfigError
from auditship.agents.supervisor import runtime
from auditship.ondisk.data_layout import DataLayout
from shipper.spool_writer import PUBLIC_KEY_NAME


def _dirs(tmp_path: Path) -> tuple[DataLayout, Path, Path]:
    return DataLayout(tmp_path / "data"), tmp_path / "run", tmp_path / "spool"


def _keys(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory of another user's needs root")
def test_a_runtime_directory_another_user_made_is_refused_by_name(tmp_path: Path) -> None:
    layout, run, spool = _dirs(tmp_path)
    run.mkdir()
    os.chown(run, 4242, 4242)
    with pytest.raises(ConfigError, match=rf"{run}: owned by uid 4242"):
        runtime.prepare(layout, run, spool, _keys(tmp_path))


def test_a_link_where_the_runtime_directory_goes_is_refused(tmp_path: Path) -> None:
    layout, run, spool = _dirs(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    run.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="not a directory"):
        runtime.prepare(layout, run, spool, _keys(tmp_path))


def test_links_planted_for_the_lock_and_the_key_are_not_followed(tmp_path: Path) -> None:
    """A link as agent.lock is refused; one as the key's temporary name is replaced, not written
    through: the files they point at keep their content."""
    layout, run, spool = _dirs(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    spool.mkdir()
    (spool / f".{PUBLIC_KEY_NAME}.tmp").symlink_to(victim)
    for fd in runtime.prepare(layout, run, spool, _keys(tmp_path)):
        os.close(fd)
    assert victim.read_text() == "precious"
    assert len((spool / PUBLIC_KEY_NAME).read_bytes()) == 32
    (run / runtime.LOCK_NAME).unlink()
    (run / runtime.LOCK_NAME).symlink_to(victim)
    with pytest.raises(ConfigError, match="is it a link"):
        runtime.prepare(layout, run, spool, _keys(tmp_path))
    assert victim.read_text() == "precious"
