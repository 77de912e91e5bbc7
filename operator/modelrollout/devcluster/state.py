"""A long-lived local control plane for people (`modelrollout dev-cluster up|down|kubeconfig`).

Tests start their own cluster in a temporary directory; this one lives in a fixed directory so
separate commands can find it. `up` must return with the cluster still running, so it starts it detached:
its processes do not die with the `up` command (every other local stack does, see `modelrollout.lifetime`)
and carry the marker `detached:<directory>` instead. No supervisor is kept alive for it: one would only
duplicate what `down` does, and would itself be one more process to leave behind.

`down` stops by those markers, not by recorded pids (a pid may have been reused since): the cluster of its
directory, including what a killed `up` left half-started, and the leftovers of any crashed run (a test
session, a demo, a benchmark whose owner and warden were both killed, or a detached cluster whose
directory was deleted). It never touches a stack whose owner still runs, and says what it stopped.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from modelrollout import lifetime
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
    down(directory, crashed_runs=False)  # what a killed `up` left there
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


def _running(directory: Path) -> bool:
    """Every process `up` recorded still runs, as a process of this directory's cluster."""
    pids = _pids(directory)
    ours = {process.pid for process in lifetime.leftovers([directory], crashed_runs=False)}
    return bool(pids) and set(pids) <= ours


def down(directory: Path | None = None, grace: float = 10.0, crashed_runs: bool = True) -> list[lifetime.StackProcess]:
    """Stop the cluster in `directory` (and, with `crashed_runs`, every leftover of a crashed local stack),
    remove the directory, and return what was stopped; see the module docstring."""
    directory = directory or default_dir()
    stopped = lifetime.stop(lifetime.leftovers([directory], crashed_runs=crashed_runs), grace)
    shutil.rmtree(directory, ignore_errors=True)
    return stopped


def report(stopped: list[lifetime.StackProcess], directory: Path | None = None) -> str:
    """What `down` did, for a person: each process with the addresses it held, and any it could not end."""
    directory = (directory or default_dir()).resolve()
    if not stopped:
        return "no process of the local stack was running"
    lines = [f"stopped {len(stopped)} process{'es' if len(stopped) != 1 else ''} of the local stack:"]
    for process in stopped:
        if process.owner == lifetime.DETACHED_PREFIX + str(directory):
            whose = "the dev cluster"
        elif process.owner.startswith(lifetime.DETACHED_PREFIX):
            whose = f"a dev cluster whose directory is gone ({process.owner[len(lifetime.DETACHED_PREFIX) :]})"
        else:
            whose = f"a run that ended without stopping it (pid {process.owner.partition(':')[0]})"
        lines.append(f"  {process.describe()}: {whose}")
    for process in stopped:
        if lifetime.running(process.pid, process.start_time):
            lines.append(f"could not stop {process.describe()}: end it with kill -KILL {process.pid}")
    return "\n".join(lines)
