"""A wheelhouse of the operator's dependencies, so the wheel test installs it offline as a deployer would.

Why: the tests run in a private network with no PyPI, yet installing the built wheel into a clean venv
must resolve its dependencies from the wheel's own metadata (a venv borrowing the dev venv's packages
would prove nothing about them). So `dev-cluster build` downloads, once, the wheels of every dependency
in pyproject.toml and of its build backend, for this interpreter; the test then runs
`pip wheel --no-index --find-links` and `pip install --no-index --find-links` against this directory.

The directory is named after a hash of those requirements and the interpreter's version, so a change of
either downloads a new set; a marker written last makes it a cache hit.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tomllib
from pathlib import Path

from modelrollout.devcluster.build import cache_root

REPO = Path(__file__).resolve().parents[3]
MARKER = ".modelrollout-complete"


class WheelhouseError(RuntimeError):
    """pip could not download a dependency; the message carries pip's output and what to do."""


def requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The run-time dependencies and the build backend's requirements, as pyproject.toml states them."""
    project = tomllib.loads(pyproject.read_text())
    return [*project["project"]["dependencies"], *project["build-system"]["requires"]]


def wheelhouse_dir(root: Path | None = None, pyproject: Path = REPO / "pyproject.toml") -> Path:
    """Where the wheels for these requirements and this interpreter are (or will be)."""
    key = "\n".join([f"{sys.version_info.major}.{sys.version_info.minor}", *sorted(requirements(pyproject))])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return (root or cache_root()) / "wheelhouse" / f"py{sys.version_info.major}{sys.version_info.minor}-{digest}"


def ensure_wheelhouse(root: Path | None = None) -> Path:
    """Download every dependency's wheel (binary only, for this interpreter) unless already there."""
    directory = wheelhouse_dir(root)
    marker = directory / MARKER
    wanted = "\n".join(requirements()) + "\n"
    if marker.is_file() and marker.read_text() == wanted:
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(directory)]
    result = subprocess.run([*args, *requirements()], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise WheelhouseError(
            f"pip download of the operator's dependencies failed (exit {result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-4000:]}\n"
            "Check that PyPI is reachable (never from inside the private network: run `modelrollout dev-cluster "
            "build` outside it) and re-run; an incomplete wheelhouse is never a cache hit."
        )
    marker.write_text(wanted)
    return directory
