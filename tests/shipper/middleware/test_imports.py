"""Starlette and grpcio are optional extras: `import shipper` loads neither, and what needs neither works
without them."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess[str]:
    # check=False: the tests assert on the return code themselves, showing stderr when it fails.
    return subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )


def test_importing_shipper_loads_no_web_or_grpc_framework() -> None:
    """The lazy names resolve only when used."""
    result = run(
        "import sys, shipper\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('starlette', 'fastapi', 'grpc')]\n"
        "assert not loaded, loaded\n"
        "assert shipper.AuditMiddlewareConfig and shipper.AuditRecorder and shipper.AuditHandler\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('starlette', 'grpc')]\n"
        "assert shipper.setup_fastapi_audit_middleware and shipper.setup_grpc_audit_interceptor\n"
    )
    assert result.returncode == 0, result.stderr


def test_without_the_extras_only_their_modules_fail_to_import() -> None:
    """With starlette and grpc absent, the config, recorder and logging bridge work; the ASGI and gRPC
    modules raise ImportError when their names are asked for."""
    result = run(
        "import sys\n"
        "for name in ('starlette', 'grpc'):\n"
        "    sys.modules[name] = None\n"
        "import shipper\n"
        "recorder = shipper.AuditRecorder(shipper.AuditMiddlewareConfig(sample_rate=0.5), emit=print)\n"
        "assert recorder.settings.sample_rate == 0.5\n"
        "for name in ('AuditMiddleware', 'setup_grpc_audit_interceptor'):\n"
        "    try:\n"
        "        getattr(shipper, name)\n"
        "    except ImportError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError(name)\n"
    )
    assert result.returncode == 0, result.stderr
