"""AuditLogger reads the lake back through the `auditship.readers` entry point, never by importing query;
and `from shipper import *` works on a plain install."""

from __future__ import annotations

import subprocess
import sys

from auditship.query import api
from shipper.readers import lake_reader

# Run in a fresh interpreter where the optional packages cannot be imported, as on a plain install.
_PLAIN = "import sys\nfor name in ('duckdb', 'starlette', 'fastapi', 'grpc'): sys.modules[name] = None\n"


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", _PLAIN + code], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_the_installed_reader_is_audit_query() -> None:
    """The entry point this distribution declares leads to query.api."""
    assert lake_reader() is api


def test_without_the_agent_extra_reading_back_says_what_to_install() -> None:
    """The logger imports; its read-back methods raise RuntimeError naming the agent extra."""
    probe = (
        "from shipper import AuditConfig, AuditContext, AuditLogger\n"
        "logger = AuditLogger(AuditConfig(), AuditContext(service_name='svc'))\n"
        "try:\n    logger.search_events()\n"
        "except RuntimeError as exc:\n    print(exc)\n"
    )
    assert "pip install 'auditship[agent]'" in _run(probe)


def test_import_star_works_on_a_plain_install_and_the_middleware_still_imports_by_name() -> None:
    """`__all__` holds only what a plain install imports; the ASGI middleware is found by name, then needs
    Starlette."""
    probe = (
        "from shipper import *\n"
        "print(EmitterStats.__name__, AuditRecorder.__name__)\n"
        "try:\n    from shipper import AuditMiddleware\n"
        "except ImportError:\n    print('needs starlette')\n"
    )
    assert _run(probe).splitlines() == ["EmitterStats AuditRecorder", "needs starlette"]
