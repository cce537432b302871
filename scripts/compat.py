#!/usr/bin/env python3
"""The compatibility matrix: tests/shipper/middleware against the oldest and the newest Starlette, FastAPI
and grpcio that auditship supports, each combination in a virtualenv of its own.

    python3 scripts/compat.py           # every combination
    python3 scripts/compat.py oldest    # one, by name

`oldest` is the lower bounds pyproject.toml declares (`starlette>=0.37` is tested as `starlette==0.37.*`),
so raising a bound there moves the matrix with it; `newest` is the latest releases. pip pairs them: FastAPI
pins its own Starlette range, so a FastAPI release that takes the Starlette asked for is picked. (There is no
combination without FastAPI: the middleware tests import it.)

A combination's virtualenv lives under ~/.cache/auditship/compat (or $XDG_CACHE_HOME), in a directory
for the checkout, and is reused while the versions pip resolves for the three and pyproject.toml are
unchanged; a new release makes a new one, and the one it replaces is removed. The project is installed
editable with its dev extra, so the virtualenv tests the working tree as it is. Resolving needs the
package index on every run.

Exit status: 0 when every combination passed, 1 otherwise; a line per combination says which versions
it ran and how it ended, and a failing one's pytest output is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import NamedTuple

PROJECT = Path(__file__).resolve().parents[1]
TESTS = "tests/shipper/middleware"
FRAMEWORKS = ("starlette", "fastapi", "grpcio")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "auditship" / "compat"
# Bounds on each step, so that a hung index, build or test ends its combination instead of holding CI;
# a whole run takes about two minutes with nothing cached, far below them.
RESOLVE_TIMEOUT_S = 120
INSTALL_TIMEOUT_S = 300
TEST_TIMEOUT_S = 300


class Outcome(NamedTuple):
    name: str
    versions: dict[str, str]
    passed: bool
    summary: str
    seconds: float


def declared_lower_bounds() -> dict[str, str]:
    """The `>=` bound of each framework in pyproject.toml's extras: {"starlette": "0.37", ...}."""
    extras = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    bounds: dict[str, str] = {}
    for requirements in extras.values():
        for requirement in requirements:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", requirement)
            if match and match[1] in FRAMEWORKS:
                bounds[match[1]] = match[2]
    missing = set(FRAMEWORKS) - bounds.keys()
    if missing:
        raise SystemExit(f"pyproject.toml: no `>=` lower bound for {', '.join(sorted(missing))}")
    return bounds


def combinations() -> dict[str, list[str]]:
    bounds = declared_lower_bounds()
    return {
        "oldest": [f"{name}=={bounds[name]}.*" for name in FRAMEWORKS],
        "newest": list(FRAMEWORKS),
    }


def run(
    command: list[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`command`'s outcome, whatever it is (callers report a failure in their own words). In a session of
    its own, so that a timeout kills all it started: pip's builds, pytest's agents."""
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
        env=env,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            stderr += f"\nkilled after {timeout:.0f} s"
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def resolve(requirements: list[str]) -> dict[str, str]:
    """The versions of the frameworks pip would install for `requirements` into an empty environment."""
    dry_run = ["--dry-run", "--quiet", "--ignore-installed", "--report", "-"]
    result = run([sys.executable, "-m", "pip", "install", *dry_run, *requirements], RESOLVE_TIMEOUT_S)
    if result.returncode != 0:
        raise SystemExit(f"pip cannot resolve {' '.join(requirements)}:\n{result.stderr}")
    installs = json.loads(result.stdout)["install"]
    versions = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in installs}
    return {name: versions[name] for name in FRAMEWORKS}


def virtualenv(name: str, versions: dict[str, str]) -> Path:
    """The combination's virtualenv, made unless one for exactly these versions and this pyproject.toml
    is ready; returns its python."""
    pins = [f"{package}=={version}" for package, version in versions.items()]
    digest = hashlib.sha256((PROJECT / "pyproject.toml").read_bytes())
    digest.update("\n".join(pins).encode())
    # A directory per checkout (the install is editable), so that two checkouts do not evict each other's.
    checkout = CACHE / hashlib.sha256(str(PROJECT).encode()).hexdigest()[:12]
    path = checkout / f"{name}-{digest.hexdigest()[:12]}"
    python = path / "bin" / "python"
    # "ready" is written last: a virtualenv an interrupted run left half made is made again.
    if (path / "ready").exists():
        return python
    for stale in checkout.glob(f"{name}-*"):
        shutil.rmtree(stale)
    checkout.mkdir(parents=True, exist_ok=True)
    for step in (
        [sys.executable, "-m", "venv", str(path)],
        [str(python), "-m", "pip", "install", "--quiet", "-e", f"{PROJECT}[dev]", *pins],
    ):
        result = run(step, INSTALL_TIMEOUT_S)
        if result.returncode != 0:
            raise SystemExit(f"{name}: {' '.join(step)} failed:\n{result.stdout}{result.stderr}")
    (path / "ready").touch()
    return python


def run_combination(name: str, requirements: list[str]) -> Outcome:
    start = time.monotonic()
    versions = resolve(requirements)
    python = virtualenv(name, versions)
    # The virtualenv's bin first, as if activated, for anything the tests start by name.
    env = {**os.environ, "VIRTUAL_ENV": str(python.parent.parent)}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    result = run([str(python), "-m", "pytest", TESTS, "-q", "-p", "no:cacheprovider"], TEST_TIMEOUT_S, env)
    lines = result.stdout.strip().splitlines()
    summary = lines[-1].strip("= ") if lines else f"pytest exited with {result.returncode}"
    if result.returncode != 0:
        print(result.stdout + result.stderr, flush=True)
    return Outcome(name, versions, result.returncode == 0, summary, time.monotonic() - start)


def main() -> int:
    matrix = combinations()
    parser = argparse.ArgumentParser(description="Run the middleware tests against each combination.")
    parser.add_argument("names", nargs="*", help=f"combinations to run: {', '.join(matrix)} (default: all)")
    names = parser.parse_args().names or list(matrix)
    if unknown := set(names) - matrix.keys():
        parser.error(f"no combination {', '.join(sorted(unknown))}; there are {', '.join(matrix)}")
    outcomes = []
    for name in names:
        outcome = run_combination(name, matrix[name])
        outcomes.append(outcome)
        versions = ", ".join(f"{package} {version}" for package, version in outcome.versions.items())
        verdict = "passed" if outcome.passed else "FAILED"
        print(f"{name} ({versions}): {verdict}: {outcome.summary} [{outcome.seconds:.0f} s]", flush=True)
    return 0 if all(outcome.passed for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
