"""`audit-agent keys`: the agent's CURVE key pair and the allow-list of client keys, with their modes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from zmq.auth import load_certificate

from auditship.agents.cli import main
from auditship.agents.curve_keys import CurveKeys


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CurveKeys:
    """The default place, keys/curve in the data directory AUDITSHIP_DATA_DIR names."""
    monkeypatch.setenv("AUDITSHIP_DATA_DIR", str(tmp_path / "data"))
    return CurveKeys(tmp_path / "data" / "keys" / "curve")


def test_init_makes_the_agent_key_pair_private_and_refuses_to_replace_it_without_force(
    keys: CurveKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    """The secret file is 0600 in a 0700 directory; a second init would cut off every client, so it
    needs --force, which makes a new pair."""
    assert main(["keys", "init"]) == 0
    public, secret = load_certificate(keys.server_secret)
    assert secret is not None
    assert load_certificate(keys.server_public) == (public, None)
    assert mode(keys.server_secret) == 0o600
    assert mode(keys.directory) == 0o700
    assert main(["keys", "init"]) == 2
    assert "has a key pair already" in capsys.readouterr().err
    assert load_certificate(keys.server_secret)[0] == public
    assert main(["keys", "init", "--force"]) == 0
    assert load_certificate(keys.server_secret)[0] != public


def test_add_allows_a_new_client_and_prints_where_its_secret_is(
    keys: CurveKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    """The client's secret certificate is 0600 in issued/, its public one in the 0700 allow-list, and
    list shows the agent's public key and the client by name."""
    assert main(["keys", "init"]) == 0
    assert main(["keys", "add", "billing-host"]) == 0
    secret_file = keys.issued / "billing-host.key_secret"
    assert str(secret_file) in capsys.readouterr().out
    assert mode(secret_file) == 0o600
    assert mode(keys.issued) == 0o700
    assert mode(keys.clients) == 0o700
    public, secret = load_certificate(secret_file)
    assert secret is not None
    assert keys.allowed() == {"billing-host": public}
    assert main(["keys", "add", "billing-host"]) == 2, "a name is given once"
    capsys.readouterr()
    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert load_certificate(keys.server_public)[0].decode() in listed
    assert f"client {public.decode()}  billing-host" in listed


def test_allow_takes_a_public_certificate_made_elsewhere_and_refuses_a_secret_one(
    keys: CurveKeys, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = CurveKeys(tmp_path / "elsewhere")
    elsewhere.init()
    assert main(["keys", "allow", "reports", str(elsewhere.server_secret)]) == 2
    assert "holds a secret key" in capsys.readouterr().err
    assert main(["keys", "allow", "reports", str(elsewhere.server_public)]) == 0
    assert keys.allowed() == {"reports": load_certificate(elsewhere.server_public)[0]}


def test_revoke_removes_the_client_and_its_issued_secret(keys: CurveKeys) -> None:
    assert main(["keys", "add", "billing-host"]) == 0
    assert main(["keys", "revoke", "billing-host"]) == 0
    assert keys.allowed() == {}
    assert list(keys.issued.iterdir()) == []
    assert main(["keys", "revoke", "billing-host"]) == 1, "no such client"


@pytest.mark.parametrize("name", ["../x", "a/b", "", "server", "x" * 65, ".hidden"])
def test_a_client_name_is_a_plain_file_name(keys: CurveKeys, name: str) -> None:
    """The name is a file's stem and the events' sender.user: nothing that walks out of clients/."""
    assert main(["keys", "add", name]) == 2
    assert not keys.clients.exists()
