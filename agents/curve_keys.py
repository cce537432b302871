"""The agent's CURVE keys for a TCP intake: its key pair and the allow-list of client keys.

    <curve_dir>/              0700 (default keys/curve in the data directory)
      server.key              the agent's public certificate: what every emitter needs (shipper.curve)
      server.key_secret       0600, the agent's secret key
      clients/                0700, the allow-list: NAME.key, a public certificate per client
      issued/                 0700, NAME.key_secret made by `audit-agent keys add`, to move to the client

The files are pyzmq's certificates (zmq.auth, the format of czmq's zcert), made by its helpers. A
client's name is its file's stem; the intake's ZAP handler (intake/curve_auth.py) gives it as the
connection's User-Id, which becomes the events' `sender.user`. So names are restricted to what is safe
as a file name and plain in a log line. Each file is made under a temporary name in the same directory
and renamed into place, so a reader (the intake reloading the allow-list) never sees half of one.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from zmq.auth import create_certificates, load_certificate

from auditship.agents.errors import ConfigError
from auditship.ondisk.files import make_private_dirs

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SERVER = "server"


class CurveKeys:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server_public = directory / f"{SERVER}.key"
        self.server_secret = directory / f"{SERVER}.key_secret"
        self.clients = directory / "clients"
        self.issued = directory / "issued"

    def init(self, *, force: bool = False) -> Path:
        """Make the agent's key pair; returns its public certificate. Refuses to replace one unless
        `force`: every client holds the public key, and would be refused by the new one."""
        if self.server_secret.exists() and not force:
            raise ConfigError(
                f"{self.server_secret}: the agent has a key pair already; replacing it (--force) "
                "cuts off every client until it is given the new server.key"
            )
        self._make(self.directory, SERVER)
        return self.server_public

    def add(self, name: str) -> Path:
        """Make a client key pair and allow its public key; returns the client's secret certificate."""
        self._check_name(name)
        if (self.issued / f"{name}.key_secret").exists() or self.allowed_file(name).exists():
            raise ConfigError(f"client key {name!r} exists already (`audit-agent keys revoke {name}` first)")
        secret = self._make(self.issued, name)
        make_private_dirs(self.clients, tighten=True)
        self._place(self.issued / f"{name}.key", self.allowed_file(name))
        return secret

    def allow(self, name: str, public_file: Path) -> None:
        """Allow a client key made elsewhere, from its public certificate."""
        self._check_name(name)
        try:
            _, secret = load_certificate(public_file)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{public_file}: not a readable CURVE certificate ({exc})") from exc
        if secret is not None:
            raise ConfigError(
                f"{public_file}: holds a secret key; give the public certificate (NAME.key) and keep the "
                "secret one on the client"
            )
        if self.allowed_file(name).exists():
            raise ConfigError(f"client key {name!r} exists already (`audit-agent keys revoke {name}` first)")
        make_private_dirs(self.clients, tighten=True)
        with tempfile.NamedTemporaryFile(dir=self.clients, prefix=".", delete=False) as staged:
            staged.write(public_file.read_bytes())
        self._place(Path(staged.name), self.allowed_file(name))

    def revoke(self, name: str) -> list[Path]:
        """Remove a client from the allow-list (and its issued secret, if still here); returns the
        files removed, none when there was no such client."""
        self._check_name(name)
        removed = []
        issued = (self.issued / f"{name}.key", self.issued / f"{name}.key_secret")
        for path in (self.allowed_file(name), *issued):
            if path.exists():
                path.unlink()
                removed.append(path)
        return removed

    def allowed(self) -> dict[str, bytes]:
        """The allow-list: each client's name and its Z85 public key. A file that is not a certificate
        is left out (the intake logs what it took)."""
        allowed: dict[str, bytes] = {}
        for path in sorted(self.clients.glob("*.key")) if self.clients.is_dir() else ():
            if not NAME.fullmatch(path.stem):
                continue
            try:
                allowed[path.stem] = load_certificate(path)[0]
            except (OSError, ValueError):
                continue
        return allowed

    def server_keys(self) -> tuple[bytes, bytes]:
        """The agent's (public, secret) Z85 keys; ConfigError when there are none."""
        try:
            public, secret = load_certificate(self.server_secret)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"intake.curve: no server key pair in {self.directory} ({exc}); make one with "
                "`audit-agent keys init`"
            ) from exc
        if secret is None:
            raise ConfigError(f"intake.curve: {self.server_secret} holds no secret key")
        return public, secret

    def allowed_file(self, name: str) -> Path:
        return self.clients / f"{name}.key"

    def _make(self, directory: Path, name: str) -> Path:
        """A key pair `name` in `directory`: made by pyzmq in a private staging directory beside it (its
        files take the umask's mode), given their modes there, then renamed into place."""
        make_private_dirs(directory, tighten=True)
        staging = Path(tempfile.mkdtemp(dir=directory, prefix=".new-"))
        try:
            public, secret = (Path(p) for p in create_certificates(staging, name))
            public.chmod(0o644)
            secret.chmod(0o600)
            self._place(public, directory / public.name)
            self._place(secret, directory / secret.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return directory / secret.name

    @staticmethod
    def _place(staged: Path, target: Path) -> None:
        staged.chmod(0o644 if target.suffix == ".key" else 0o600)
        staged.replace(target)

    @staticmethod
    def _check_name(name: str) -> None:
        if not NAME.fullmatch(name) or name == SERVER:
            raise ConfigError(
                f"client name {name!r}: use letters, digits, '.', '_' and '-' (at most 64, not "
                f"{SERVER!r}); it becomes the events' sender.user"
            )
