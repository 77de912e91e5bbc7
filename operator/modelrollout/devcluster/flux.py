"""Flux's source-controller and kustomize-controller, built from the Go module proxy and run on loopback.

Used by the GitOps scenario test: a real GitRepository + Kustomization apply a ModelDeployment from a
real Git server, and kustomize-controller's health checks report what the operator says.

Rules:
- Built once into `<cache>/bin/flux-<controller>-<version>/`; a directory holding its binary is a hit.
- Both controllers have `replace` directives that a dependent ignores, so each is built from a wrapper
  module that copies the non-local replace lines from the go.mod the proxy serves (never written by
  hand); its `./api` replace is covered by the published api module it already requires.
- Extra pins the proxy forces on us live in `EXTRA_REPLACES`, each with the reason.
- The controllers run outside the cluster with KUBECONFIG, every listener on 127.0.0.1, each in its
  own session; stopped TERM then KILL; readiness is polled with deadlines.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from modelrollout import lifetime
from modelrollout.devcluster import versions
from modelrollout.devcluster.build import (
    GO_DIRECTIVE,
    cache_root,
    go_run,
    install_atomically,
    is_complete,
    module_dir,
    module_info,
)
from modelrollout.devcluster.cluster import Cluster, Process, free_port, wait_until

SOURCE_CONTROLLER_MODULE = "github.com/fluxcd/source-controller"
KUSTOMIZE_CONTROLLER_MODULE = "github.com/fluxcd/kustomize-controller"

# Pins added to a controller's own replaces, by module: {dependency: (version, why)}.
EXTRA_REPLACES: dict[str, dict[str, tuple[str, str]]] = {
    SOURCE_CONTROLLER_MODULE: {
        # source-controller v1.9.6 requires v0.18.3, which the Go module proxy refuses to serve;
        # it builds against v0.18.1 (the artifact storage and server it uses are unchanged).
        "github.com/fluxcd/pkg/artifact": ("v0.18.1", "the proxy refuses v0.18.3"),
    },
    KUSTOMIZE_CONTROLLER_MODULE: {},
}

_SINGLE_REPLACE = re.compile(r"^replace\s+(?!\()(.+?)\s*$", re.MULTILINE)
_REPLACE_BLOCK = re.compile(r"^replace\s*\(\s*$(.*?)^\)", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class FluxController:
    """One Flux controller: its module, pinned version and the name of its binary."""

    name: str
    module: str
    version: str

    @property
    def directory_name(self) -> str:
        return f"flux-{self.name}-{self.version}"


SOURCE_CONTROLLER = FluxController("source-controller", SOURCE_CONTROLLER_MODULE, versions.FLUX_SOURCE_CONTROLLER)
KUSTOMIZE_CONTROLLER = FluxController(
    "kustomize-controller", KUSTOMIZE_CONTROLLER_MODULE, versions.FLUX_KUSTOMIZE_CONTROLLER
)
CONTROLLERS = (SOURCE_CONTROLLER, KUSTOMIZE_CONTROLLER)


@dataclass(frozen=True)
class FluxBinaries:
    """Paths of both controllers' executables."""

    source_controller: Path
    kustomize_controller: Path


def replace_lines(gomod: str) -> list[str]:
    """Every `old => new version` replace of a go.mod, without local-path ones (`=> ./api`)."""
    entries = [match.group(1) for match in _SINGLE_REPLACE.finditer(gomod)]
    for block in _REPLACE_BLOCK.finditer(gomod):
        entries += [line.strip() for line in block.group(1).splitlines()]
    lines = []
    for entry in entries:
        entry = entry.split("//", 1)[0].strip()
        if not entry or "=>" not in entry:
            continue
        target = entry.split("=>", 1)[1].strip()
        if target.startswith(("./", "../", "/")):
            continue
        lines.append(" ".join(entry.split()))
    return lines


def wrapper_gomod(controller: FluxController, upstream_gomod: str) -> str:
    """A go.mod that requires the controller and carries its replaces plus our extra pins."""
    pins = EXTRA_REPLACES.get(controller.module, {})
    copied = [line for line in replace_lines(upstream_gomod) if line.split()[0] not in pins]
    lines = [f"module modelrollout.local/flux-{controller.name}-build", ""]
    go_line = GO_DIRECTIVE.search(upstream_gomod)
    if go_line:
        lines += [f"go {go_line.group(1)}", ""]
    lines += [f"require {controller.module} {controller.version}", "", "replace ("]
    lines += [f"\t{line}" for line in copied]
    for dependency, (version, why) in sorted(pins.items()):
        lines.append(f"\t{dependency} => {dependency} {version} // {why}")
    lines += [")", ""]
    return "\n".join(lines)


def build_controller(controller: FluxController, root: Path, log: Path) -> Path:
    """Build one controller unless its cache directory is complete; returns the binary's path."""
    final = root / "bin" / controller.directory_name
    if is_complete(final, (controller.name,)):
        return final / controller.name
    work = root / "build" / controller.directory_name
    work.mkdir(parents=True, exist_ok=True)
    info = module_info(controller.module, controller.version, work / "probe", log)
    (work / "go.mod").write_text(wrapper_gomod(controller, Path(info["GoMod"]).read_text()))
    (work / "go.sum").unlink(missing_ok=True)
    go_run(["go", "get", f"{controller.module}@{controller.version}"], work, log)
    staging_dir = work / "out"
    shutil.rmtree(staging_dir, ignore_errors=True)
    staging_dir.mkdir()
    go_run(
        [
            "go",
            "build",
            "-trimpath",
            "-ldflags",
            "-s -w",
            "-o",
            str(staging_dir / controller.name),
            controller.module,
        ],
        work,
        log,
    )
    install_atomically(staging_dir, final)
    return final / controller.name


def ensure_flux(root: Path | None = None, echo: bool = True) -> FluxBinaries:
    """Build whichever controller is missing (each with its own log in the cache) and return their paths.

    Also downloads the modules' source trees, so `flux_crds()` works later without a network.
    """
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    built: dict[str, Path] = {}
    for controller in CONTROLLERS:
        started = time.monotonic()
        built[controller.name] = build_controller(controller, root, root / f"build-{controller.directory_name}.log")
        elapsed = time.monotonic() - started
        if echo and elapsed > 5:
            print(f"modelrollout: built Flux {controller.name} in {elapsed:.0f}s (cache {root})", file=sys.stderr)
    flux_crds()
    return FluxBinaries(
        source_controller=built[SOURCE_CONTROLLER.name], kustomize_controller=built[KUSTOMIZE_CONTROLLER.name]
    )


def flux_crds() -> list[Path]:
    """GitRepository, Kustomization and the other CRDs both controllers watch, from their modules."""
    paths: list[Path] = []
    for controller in CONTROLLERS:
        directory = module_dir(controller.module, controller.version) / "config" / "crd" / "bases"
        found = sorted(directory.glob("*.yaml"))
        if not found:
            raise FileNotFoundError(f"no CRDs in {directory}")
        paths += found
    names = {path.name for path in paths}
    for needed in ("source.toolkit.fluxcd.io_gitrepositories.yaml", "kustomize.toolkit.fluxcd.io_kustomizations.yaml"):
        if needed not in names:
            raise FileNotFoundError(f"{needed} missing from the Flux modules")
    return paths


def install_crds(running: Cluster, timeout: float = 60.0) -> None:
    """Apply Flux's CRDs to a cluster and wait until the apiserver serves them."""
    paths = flux_crds()
    running.kubectl_retrying("apply", "--server-side", "--force-conflicts", *[f"--filename={path}" for path in paths])
    names = [f"crd/{yaml.safe_load(path.read_text())['metadata']['name']}" for path in paths]
    running.kubectl_retrying("wait", "--for=condition=Established", f"--timeout={timeout:.0f}s", *names)


@dataclass
class FluxControllers:
    """source-controller and kustomize-controller running against one cluster. Stop with `stop()`."""

    workdir: Path
    namespace: str
    processes: list[Process] = field(default_factory=list)
    remove_workdir: bool = True

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def logs(self, name: str, tail: int = 4000) -> str:
        """The end of one controller's log, for a failing test's message."""
        process = next(process for process in self.processes if process.name == name)
        return process.log.read_text(errors="replace")[-tail:]

    def __enter__(self) -> FluxControllers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _launch(name: str, args: list[str], env: dict[str, str], log: Path) -> Process:
    with log.open("ab") as out:
        popen = lifetime.popen(
            args,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            close_fds=True,
        )
    return Process(name, popen, log, list(args))


def _ready(process: Process, health: str, serves: str | None = None) -> bool:
    """The controller's /readyz answers 200 and, for source-controller, its artifact server accepts connections."""
    if not process.alive():
        tail = process.log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{tail}")
    with urllib.request.urlopen(f"http://{health}/readyz", timeout=2) as response:
        if response.status != 200:
            return False
    if serves is not None:
        host, port = serves.rsplit(":", 1)
        socket.create_connection((host, int(port)), timeout=2).close()
    return True


def start(
    running: Cluster,
    binaries: FluxBinaries | None = None,
    namespace: str = "flux-system",
    workdir: Path | None = None,
    timeout: float = 60.0,
) -> FluxControllers:
    """Install the CRDs and start both controllers outside the cluster; returns once both are ready.

    Every listener is on 127.0.0.1 (ports chosen free); leader election is off (one replica each);
    the artifact storage is a directory under `workdir`, served to kustomize-controller over HTTP.
    """
    binaries = binaries or ensure_flux()
    install_crds(running)
    running.kubectl("create", "namespace", namespace, check=False)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="modelrollout-flux-"))
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    controllers = FluxControllers(workdir, namespace)
    env = {
        **os.environ,
        "KUBECONFIG": str(running.kubeconfig),
        "RUNTIME_NAMESPACE": namespace,
        "TMPDIR": str(workdir),  # kustomize-controller unpacks artifacts into temp directories
    }
    storage_address = f"127.0.0.1:{free_port()}"
    common = ["--enable-leader-election=false", "--log-level=info", "--watch-all-namespaces=true"]
    launched: list[tuple[Process, str, str | None]] = []
    try:
        for name, binary, serves, extra in (
            (
                SOURCE_CONTROLLER.name,
                binaries.source_controller,
                storage_address,
                [
                    f"--storage-path={storage}",
                    f"--storage-addr={storage_address}",
                    f"--storage-adv-addr={storage_address}",
                ],
            ),
            (KUSTOMIZE_CONTROLLER.name, binaries.kustomize_controller, None, []),
        ):
            health = f"127.0.0.1:{free_port()}"
            args = [str(binary), *common, f"--metrics-addr=127.0.0.1:{free_port()}", f"--health-addr={health}", *extra]
            process = _launch(name, args, env, workdir / f"{name}.log")
            controllers.processes.append(process)
            launched.append((process, health, serves))
        for process, health, serves in launched:
            wait_until(lambda p=process, h=health, s=serves: _ready(p, h, s), timeout, f"{process.name} ready")
    except BaseException:
        controllers.stop()
        raise
    return controllers


if __name__ == "__main__":
    print(ensure_flux())
