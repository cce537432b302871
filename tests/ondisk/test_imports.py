"""ondisk is what the agent and audit-query share: importing it loads msgspec and the standard library,
nothing of the packages above it and none of the heavy libraries its functions use when they run."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

from auditship import ondisk


def test_importing_every_ondisk_module_loads_only_the_stdlib_and_msgspec() -> None:
    """DuckDB, zstandard and cryptography are imported by the functions that need them."""
    modules = [f"auditship.ondisk.{info.name}" for info in pkgutil.iter_modules(ondisk.__path__)]
    probe = (
        f"import sys; import {', '.join(modules)}; "
        "print(sorted({'.'.join(m.split('.')[:2]) for m in sys.modules} & "
        "{'shipper', 'auditship.agents', 'auditship.query', 'duckdb', 'zstandard', 'cryptography', 'zmq'}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
