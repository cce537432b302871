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


def test_the_install_marks_are_the_installed_agents_directories_unit_and_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unless AUDITSHIP_INSTALL_MARKS replaces them (the suite sets it empty): the places docs/deploy.md
    makes."""
    monkeypatch.delenv("AUDITSHIP_INSTALL_MARKS")
    assert endpoint.install_marks() == (
        Path("/run/auditship"),
        Path("/var/spool/auditship"),
        Path("/etc/systemd/system/audit-agent.service"),
        Path("/lib/systemd/system/audit-agent.service"),
        Path("/usr/lib/systemd/system/audit-agent.service"),
        Path("/etc/auditship/agent.toml"),
    )


@pytest.mark.parametrize("which", range(len(endpoint._INSTALL_MARKS)))
def test_any_one_install_mark_makes_the_host_one_with_an_installed_agent(
    which: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each mark, alone, made under tmp_path (a directory or a file, as the host has it): the host then
    has an installed agent, and emitters aim at /run/auditship."""
    marks = [tmp_path / mark.relative_to("/") for mark in endpoint._INSTALL_MARKS]
    monkeypatch.setenv("AUDITSHIP_INSTALL_MARKS", os.pathsep.join(str(mark) for mark in marks))
    assert not endpoint.agent_installed()
    mark = marks[which]
    mark.parent.mkdir(parents=True, exist_ok=True)
    if mark.suffix:
        mark.write_text("")
    else:
        mark.mkdir()
    assert endpoint.agent_installed()
    assert endpoint.runtime_dir() == Path("/run/auditship")
    assert endpoint.intake_endpoint() == "ipc:///run/auditship/intake.sock"


def test_the_install_marks_variable_replaces_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set empty, as the suite sets it, nothing marks an install, whatever this host has; set to paths,
    any of them that exists does."""
    monkeypatch.setenv("AUDITSHIP_INSTALL_MARKS", "")
    assert endpoint.install_marks() == ()
    assert not endpoint.agent_installed()
    monkeypatch.setenv("AUDITSHIP_INSTALL_MARKS", f"/no/such/mark{os.pathsep}/")
    assert endpoint.install_marks() == (Path("/no/such/mark"), Path("/"))
    assert endpoint.agent_installed()


def test_the_installed_agents_socket_spills_to_the_system_spool_and_others_beside_their_socket() -> None:
    """/run/auditship's emitters spill to /var/spool/auditship (there at boot, reachable by the group);
    any other ipc socket's to the `spool` link beside it."""
    assert endpoint.spool_dir("ipc:///run/auditship/intake.sock") == Path("/var/spool/auditship")
    assert endpoint.spool_dir("ipc:///run/other/intake.sock") == Path("/run/other/spool")
