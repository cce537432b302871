"""deploy/systemd as systemd reads it: the agent's unit stays sandboxed (`systemd-analyze security` scores it
2.0 or less, 10 being unconfined), and the unit, an emitting service's drop-in and the spool's tmpfiles.d
line all parse.

systemd-analyze and systemd-tmpfiles come from Debian's systemd package; without them these tests skip, or
fail under AUDITSHIP_REQUIRE_SERVICES=1. They read copies in tmp_path and create nothing in /etc or /var.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

from tests.services import require

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNIT = DEPLOY / "audit-agent.service"
EXEC_START = "ExecStart=/opt/auditship/bin/audit-agent "
MAX_EXPOSURE = 2.0


def systemd_tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/bin:/bin")
    require(path is not None, f"{name} is not installed (apt-get install systemd)")
    assert path is not None
    return path


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def runnable_unit(directory: Path) -> Path:
    """The unit with ExecStart on an executable this machine has: `verify` checks that it exists, and
    /opt/auditship is not installed here. Nothing else changes."""
    text = UNIT.read_text()
    assert text.count(EXEC_START) == 1
    true = shutil.which("true")
    assert true is not None
    unit = directory / UNIT.name
    unit.write_text(text.replace(EXEC_START, f"ExecStart={true} "))
    return unit


def complaints(result: subprocess.CompletedProcess[str], *units: str) -> list[str]:
    """What `verify` said about these units (it warns and still exits 0 on an unknown key or value)."""
    return [line for line in (result.stdout + result.stderr).splitlines() if any(u in line for u in units)]


def test_the_agent_unit_scores_at_most_2_0_in_systemd_analyze_security() -> None:
    """The threshold is in tenths: with --threshold=20 the command itself fails above 2.0."""
    analyze = systemd_tool("systemd-analyze")
    result = run(
        analyze, "security", "--offline=true", f"--threshold={MAX_EXPOSURE * 10:.0f}", "--no-pager", str(UNIT)
    )
    level = re.search(r"Overall exposure level for audit-agent\.service: (\d+\.\d+)", result.stdout)
    assert level is not None, result.stdout + result.stderr
    assert float(level[1]) <= MAX_EXPOSURE, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_agent_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """Every key and value is one systemd 252 knows: a misspelt directive would only be a warning."""
    analyze = systemd_tool("systemd-analyze")
    unit = runnable_unit(tmp_path)
    result = run(analyze, "verify", "--man=false", str(unit))
    assert result.returncode == 0, result.stdout + result.stderr
    assert complaints(result, unit.name) == []


def test_the_emitting_services_drop_in_parses(tmp_path: Path) -> None:
    """Installed as <service>.service.d/auditship.conf beside the agent's unit, it draws no warning."""
    analyze = systemd_tool("systemd-analyze")
    runnable_unit(tmp_path)
    service = tmp_path / "emitter.service"
    service.write_text("[Service]\nExecStart=/bin/true\n")
    dropins = tmp_path / "emitter.service.d"
    dropins.mkdir()
    shutil.copy(DEPLOY / "service-dropin.conf", dropins / "auditship.conf")
    # A second drop-in with a bad key proves verify read this directory, so its silence on
    # auditship.conf means that file parsed, not that it went unread.
    (dropins / "zz-probe.conf").write_text("[Service]\nNoSuchKey=1\n")
    result = run(analyze, "verify", "--man=false", str(service))
    assert result.returncode == 0, result.stdout + result.stderr
    assert any("NoSuchKey" in line for line in complaints(result, "zz-probe.conf")), result.stderr
    assert complaints(result, "auditship.conf", "audit-agent.service") == []


def test_the_tmpfiles_lines_make_the_spool_and_the_keys_dir_of_auditship(tmp_path: Path) -> None:
    """The spool: setgid and sticky, group may create but not list; keys_dir: 0700; both owned by
    auditship:auditship."""
    tmpfiles = systemd_tool("systemd-tmpfiles")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    # With --root, users are looked up in the root's own /etc/passwd and /etc/group: auditship is us
    # there, so the chown needs no privilege and no auditship user on this machine.
    uid, gid = os.getuid(), os.getgid()
    (root / "etc" / "passwd").write_text(f"auditship:x:{uid}:{gid}::/var/lib/auditship:/usr/sbin/nologin\n")
    (root / "etc" / "group").write_text(f"auditship:x:{gid}:\n")
    result = run(tmpfiles, "--create", f"--root={root}", str(DEPLOY / "auditship.tmpfiles"))
    assert result.returncode == 0, result.stderr
    spool = (root / "var" / "spool" / "auditship").lstat()
    assert stat.S_ISDIR(spool.st_mode)
    assert oct(stat.S_IMODE(spool.st_mode)) == oct(0o3730)
    assert (spool.st_uid, spool.st_gid) == (uid, gid)
    keys = (root / "etc" / "auditship" / "keys").lstat()
    assert stat.S_ISDIR(keys.st_mode)
    assert oct(stat.S_IMODE(keys.st_mode)) == oct(0o700)
    assert (keys.st_uid, keys.st_gid) == (uid, gid)
