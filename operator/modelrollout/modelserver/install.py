"""MLServer in its own virtualenv, installed once into the cache.

Why a separate venv: MLServer pins FastAPI, pydantic, uvloop and numpy versions the operator must not
inherit, and it runs as its own process anyway. A marker file written last makes the directory a cache
hit; anything without it is a half install and is rebuilt from scratch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MLSERVER = "1.7.1"  # the same pin as devcluster.versions.MLSERVER (this package may not import devcluster)
REQUIREMENTS = (
    f"mlserver=={MLSERVER}",
    f"mlserver-sklearn=={MLSERVER}",
    # 0.23 crashes MLServer's default parallel worker at start (SeldonIO/MLServer#2286).
    "uvloop==0.21.0",
    "scikit-learn==1.6.1",
    "joblib==1.5.1",
)
MARKER = ".modelrollout-complete"


class InstallError(RuntimeError):
    """pip could not install MLServer; the message carries pip's own error and what to do."""


def cache_root() -> Path:
    """The cache shared with devcluster (same rule, copied: this package may not import devcluster)."""
    configured = os.environ.get("MODELROLLOUT_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "modelrollout"


def venv_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / f"mlserver-{MLSERVER}"


def _marker_text() -> str:
    return "\n".join(REQUIREMENTS) + "\n"


def is_installed(root: Path | None = None) -> bool:
    """A cache hit: the marker exists and names exactly the pinned requirements."""
    marker = venv_dir(root) / MARKER
    return marker.is_file() and marker.read_text() == _marker_text()


def python(root: Path | None = None) -> Path:
    return venv_dir(root) / "bin" / "python"


def mlserver_executable(root: Path | None = None) -> Path:
    return venv_dir(root) / "bin" / "mlserver"


def _run_pip(args: list[str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(args)}\n")
        out.flush()
        result = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise InstallError(
            f"installing MLServer failed (exit {result.returncode}) running {' '.join(args[:4])} ...\n"
            f"{tail}\n"
            f"Full log: {log}. Check that PyPI is reachable (pip's proxy and certificate settings; inside "
            f"the private network it never is: install first, outside, with `modelrollout dev-cluster build`) "
            f"and re-run; a failed install is never a cache hit, so the next run starts over."
        )


def ensure_mlserver(root: Path | None = None, echo: bool = True) -> Path:
    """Install MLServer into `<cache>/mlserver-<version>` unless already there; return the venv's python.

    The mlserver executable is beside it (`mlserver_executable()`).
    """
    final = venv_dir(root)
    if is_installed(root):
        return python(root)
    started = time.monotonic()
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    log = final.parent / f"mlserver-{MLSERVER}-install.log"
    log.write_text("")
    # The interpreter running this, so the venv's Python matches the one the project was set up with.
    base = getattr(sys, "_base_executable", None) or sys.executable
    _run_pip([base, "-m", "venv", str(final)], log)
    venv_python = str(python(root))
    _run_pip([venv_python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], log)
    _run_pip([venv_python, "-m", "pip", "install", "--quiet", *REQUIREMENTS], log)
    (final / MARKER).write_text(_marker_text())
    if echo:
        elapsed = time.monotonic() - started
        print(f"modelrollout: installed MLServer {MLSERVER} in {elapsed:.0f}s ({final})", file=sys.stderr)
    return python(root)


if __name__ == "__main__":
    print(ensure_mlserver())
