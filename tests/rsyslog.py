"""A real rsyslogd for tests and benchmarks, started by whoever needs it and never the system daemon:
its own config and work directory in a temporary directory, an imtcp input on 127.0.0.1 (a port it
picks itself, or the one it had before a restart), and a file output with one JSON line per message:
the raw message as received, what rsyslog parsed from it, and when it arrived.

rsyslog comes from Debian's package (`apt-get install rsyslog`); `available()` says whether it is here.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from msgspec import json

from tests.services import tcp_reachable
from tests.waiting import wait_for

_TEMPLATE = """
template(name="seen" type="list") {
  constant(value="{\\"raw\\":\\"") property(name="rawmsg" format="json")
  constant(value="\\",\\"pri\\":\\"") property(name="pri")
  constant(value="\\",\\"hostname\\":\\"") property(name="hostname" format="json")
  constant(value="\\",\\"app\\":\\"") property(name="app-name" format="json")
  constant(value="\\",\\"msgid\\":\\"") property(name="msgid" format="json")
  constant(value="\\",\\"timestamp\\":\\"") property(name="timereported" dateFormat="rfc3339")
  constant(value="\\",\\"received\\":\\"") property(name="timegenerated" dateFormat="rfc3339")
  constant(value="\\",\\"msg\\":\\"") property(name="msg" format="json")
  constant(value="\\"}\\n")
}
template(name="raw" type="string" string="%msg%\\n")
"""


def rsyslogd() -> str | None:
    return shutil.which("rsyslogd") or shutil.which("rsyslogd", path="/usr/sbin:/sbin")


def available() -> bool:
    return rsyslogd() is not None


class Rsyslog:
    def __init__(self, raw_lines: bool = False) -> None:
        """`raw_lines`: write each message's text alone, one per line (what the agent's file sink
        writes), rather than the JSON line describing it that tests read with `messages()`."""
        self.raw_lines = raw_lines
        self.root = Path(tempfile.mkdtemp(prefix="as-rsyslog-"))
        self.output = self.root / "messages.jsonl"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> Rsyslog:
        """Start rsyslogd on `port` (0 the first time: it picks one and writes it to a file)."""
        binary = rsyslogd()
        if binary is None:
            raise RuntimeError("rsyslogd is not installed (apt-get install rsyslog)")
        work, port_file = self.root / "work", self.root / "port"
        work.mkdir(exist_ok=True)
        port_file.unlink(missing_ok=True)
        config = self.root / "rsyslog.conf"
        template = "raw" if self.raw_lines else "seen"
        config.write_text(
            f'global(workDirectory="{work}" maxMessageSize="256k")\n'
            'module(load="imtcp")\n'
            f"{_TEMPLATE}"
            f'ruleset(name="audit") {{ action(type="omfile" file="{self.output}" template="{template}") }}\n'
            f'input(type="imtcp" address="127.0.0.1" port="{self.port}" '
            f'listenPortFileName="{port_file}" ruleset="audit")\n'
        )
        log = (self.root / "rsyslogd.log").open("ab")
        self._process = subprocess.Popen(
            [binary, "-n", "-f", str(config), "-i", str(self.root / "rsyslogd.pid")],
            stdout=log,
            stderr=log,
        )
        log.close()
        # rsyslog writes the port file only when it picked the port; after a restart it reuses it.
        self.port = int(wait_for(self._listening, timeout, f"rsyslogd to listen (log: {self.root})"))
        return self

    def _listening(self) -> str:
        """The port once rsyslogd listens on it, else ""."""
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(f"rsyslogd exited with {self._process.returncode}: {self.log()}")
        if self.port:
            return str(self.port) if tcp_reachable("127.0.0.1", self.port) else ""
        path = self.root / "port"
        return path.read_text().strip() if path.exists() else ""

    def messages(self) -> list[dict[str, str]]:
        """The messages rsyslog has written whole: a line it is still writing (no newline yet) waits."""
        if not self.output.exists():
            return []
        whole, _, _ = self.output.read_bytes().rpartition(b"\n")
        return [json.decode(line) for line in whole.split(b"\n") if line]

    def log(self) -> str:
        path = self.root / "rsyslogd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
        self._process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
