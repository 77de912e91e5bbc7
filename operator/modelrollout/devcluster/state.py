"""A long-lived local control plane for people (`modelrollout dev-cluster up|down|kubeconfig`).

Tests start their own cluster in a temporary directory; this one lives in a fixed directory so
separate commands can find it, and `down` stops it from the process ids `up` recorded.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from modelrollout.devcluster import cluster
from modelrollout.devcluster.build import cache_root
from modelrollout.devcluster.routercrds import router_crds

CRD_DIR = Path(__file__).resolve().parents[3] / "crds"


def default_dir() -> Path:
    return cache_root() / "dev-cluster"


def up(directory: Path | None = None, nodes: int = cluster.DEFAULT_NODES) -> Path:
    directory = directory or default_dir()
    if (directory / "kubeconfig").exists() and _running(directory):
        return directory / "kubeconfig"
    down(directory)
    running = cluster.start(workdir=directory, nodes=nodes, detach=True)
    install_crds(running)
    return running.kubeconfig


def install_crds(running: cluster.Cluster, crd_dir: Path = CRD_DIR, routers: bool = True) -> None:
    """Apply the project's CRDs (and the data planes' real ones) and wait until the apiserver serves them."""
    own = [path for path in sorted(crd_dir.glob("*.yaml")) if path.name != "kustomization.yaml"]
    paths = [*own, *(router_crds() if routers else [])]
    arguments = [argument for path in paths for argument in ("-f", str(path))]
    running.kubectl_retrying("apply", "--server-side", "--force-conflicts", *arguments)
    running.kubectl_retrying("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")


def _pids(directory: Path) -> list[int]:
    pid_dir = directory / "pids"
    return [int(path.read_text()) for path in pid_dir.iterdir()] if pid_dir.is_dir() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _running(directory: Path) -> bool:
    pids = _pids(directory)
    return bool(pids) and all(_alive(pid) for pid in pids)


def down(directory: Path | None = None, grace: float = 10.0) -> None:
    directory = directory or default_dir()
    pids = _pids(directory)
    for pid in pids:
        if _alive(pid):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    shutil.rmtree(directory, ignore_errors=True)
