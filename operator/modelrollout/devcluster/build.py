"""Build the control plane's binaries from upstream Go modules, once, into a versioned cache.

Rules:
- Only the Go module proxy is used; no prebuilt binary is downloaded and none is committed.
- k8s.io/kubernetes cannot be `go install`ed: its go.mod requires its staging modules at
  v0.0.0 and replaces them with local paths. A small wrapper module requires it and
  replaces each staging module with its published v0.N.M; the list is read from the
  go.mod that the proxy serves for that release, never written by hand.
- Every result lands in `<cache>/bin/<component>-<version>/`; a directory that holds all
  its binaries is a cache hit and nothing runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from modelrollout.devcluster import versions

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", re.MULTILINE)
GO_DIRECTIVE = re.compile(r"^go\s+(\S+)\s*$", re.MULTILINE)
GODEBUG_DIRECTIVE = re.compile(r"^godebug\s+(.+)$", re.MULTILINE)


def cache_root() -> Path:
    """The cache shared by tests, the demo and CI runs on the same machine."""
    configured = os.environ.get("MODELROLLOUT_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "modelrollout"


@dataclass(frozen=True)
class Binaries:
    """Paths of every executable the local control plane runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path
    kwok_stages: Path


def go_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    env.setdefault("CGO_ENABLED", "0")
    # Never fetch another Go toolchain: the installed one is new enough for every pin.
    env["GOTOOLCHAIN"] = "local"
    env["GOFLAGS"] = "-mod=mod"
    return env


def go_run(args: list[str], cwd: Path, log: Path, extra_env: dict[str, str] | None = None) -> None:
    """Run a go command, appending its output to a log that is shown if it fails."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(args)}\n")
        out.flush()
        result = subprocess.run(args, cwd=cwd, env=go_env(extra_env), stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log.read_text()[-6000:]
        raise RuntimeError(f"{' '.join(args[:3])} failed (exit {result.returncode}); log {log}:\n{tail}")


def module_info(module: str, version: str, workdir: Path, log: Path) -> dict[str, str]:
    """Download a module through the proxy and return `go mod download -json` facts (Dir, GoMod)."""
    workdir.mkdir(parents=True, exist_ok=True)
    args = ["go", "mod", "download", "-json", f"{module}@{version}"]
    result = subprocess.run(args, cwd=workdir, env=go_env(), capture_output=True, text=True)
    with log.open("a") as out:
        out.write(f"$ {' '.join(args)}\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        raise RuntimeError(f"go mod download {module}@{version} failed: {result.stdout}{result.stderr}")
    return json.loads(result.stdout)


def kubernetes_wrapper_gomod(kubernetes_gomod: str, version: str) -> str:
    """The wrapper go.mod: same go/godebug lines as upstream, staging modules at published versions."""
    staging = sorted(set(STAGING_REPLACE.findall(kubernetes_gomod)))
    if not staging:
        raise ValueError("no staging replace directives found in k8s.io/kubernetes go.mod")
    published = "v0." + version.removeprefix("v1.")
    go_line = GO_DIRECTIVE.search(kubernetes_gomod)
    godebug_line = GODEBUG_DIRECTIVE.search(kubernetes_gomod)
    lines = ["module modelrollout.local/kubernetes-build", ""]
    if go_line:
        lines.append(f"go {go_line.group(1)}")
    if godebug_line:
        lines.append(f"godebug {godebug_line.group(1)}")
    lines += ["", f"require k8s.io/kubernetes {version}", "", "replace ("]
    lines += [f"\t{module} => {module} {published}" for module in staging]
    lines += [")", ""]
    return "\n".join(lines)


def _kubernetes_ldflags(version: str) -> str:
    major, minor = version.removeprefix("v").split(".")[:2]
    pairs = {
        "k8s.io/component-base/version.gitVersion": version,
        "k8s.io/component-base/version.gitMajor": major,
        "k8s.io/component-base/version.gitMinor": minor,
        "k8s.io/component-base/version.gitTreeState": "clean",
        "k8s.io/client-go/pkg/version.gitVersion": version,
        "k8s.io/client-go/pkg/version.gitMajor": major,
        "k8s.io/client-go/pkg/version.gitMinor": minor,
    }
    return "-s -w " + " ".join(f"-X {key}={value}" for key, value in pairs.items())


def is_complete(directory: Path, names: tuple[str, ...]) -> bool:
    return all((directory / name).is_file() for name in names)


def install_atomically(built: Path, final: Path) -> None:
    """Move a finished build into place atomically so a half build is never a cache hit."""
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    built.rename(final)


def build_kubernetes(root: Path, log: Path) -> Path:
    version = versions.KUBERNETES
    final = root / "bin" / f"kubernetes-{version}"
    if is_complete(final, KUBERNETES_COMMANDS):
        return final
    work = root / "build" / f"kubernetes-{version}"
    work.mkdir(parents=True, exist_ok=True)
    info = module_info("k8s.io/kubernetes", version, work, log)
    (work / "go.mod").write_text(kubernetes_wrapper_gomod(Path(info["GoMod"]).read_text(), version))
    (work / "go.sum").unlink(missing_ok=True)
    packages = [f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES_COMMANDS]
    go_run(["go", "get", *[f"{package}@{version}" for package in packages]], work, log)
    staging_dir = work / "out"
    shutil.rmtree(staging_dir, ignore_errors=True)
    staging_dir.mkdir()
    # One `go build` for all commands so they share one compilation of the common packages.
    go_run(
        [
            "go",
            "build",
            "-trimpath",
            "-tags",
            versions.KUBERNETES_BUILD_TAGS,
            "-ldflags",
            _kubernetes_ldflags(version),
            "-o",
            str(staging_dir) + "/",
            *packages,
        ],
        work,
        log,
    )
    install_atomically(staging_dir, final)
    return final


def build_etcd(root: Path, log: Path) -> Path:
    version = versions.ETCD
    final = root / "bin" / f"etcd-{version}"
    if is_complete(final, ("etcd",)):
        return final
    work = root / "build" / f"etcd-{version}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text("module modelrollout.local/etcd-build\n\ngo 1.24\n")
    (work / "go.sum").unlink(missing_ok=True)
    # A dependent ignores etcd's own local replaces; its requirements are real published versions.
    go_run(["go", "get", f"go.etcd.io/etcd/server/v3@{version}"], work, log)
    staging_dir = work / "out"
    shutil.rmtree(staging_dir, ignore_errors=True)
    staging_dir.mkdir()
    go_run(
        ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(staging_dir / "etcd"), "go.etcd.io/etcd/server/v3"],
        work,
        log,
    )
    install_atomically(staging_dir, final)
    return final


def build_kwok(root: Path, log: Path) -> tuple[Path, Path]:
    """kwok has no replace directives, so `go install` works; its Stage objects come from its module zip."""
    version = versions.KWOK
    final = root / "bin" / f"kwok-{version}"
    if not is_complete(final, ("kwok", "stages.yaml")):
        work = root / "build" / f"kwok-{version}"
        work.mkdir(parents=True, exist_ok=True)
        staging_dir = work / "out"
        shutil.rmtree(staging_dir, ignore_errors=True)
        staging_dir.mkdir()
        install = ["go", "install", "-trimpath", "-ldflags", "-s -w", f"sigs.k8s.io/kwok/cmd/kwok@{version}"]
        go_run(install, work, log, extra_env={"GOBIN": str(staging_dir)})
        module_dir = Path(module_info("sigs.k8s.io/kwok", version, work, log)["Dir"])
        (staging_dir / "stages.yaml").write_text(kwok_stages(module_dir))
        install_atomically(staging_dir, final)
    return final / "kwok", final / "stages.yaml"


KWOK_STAGE_FILES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat/node-heartbeat.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)


def kwok_stages(module_dir: Path) -> str:
    """Concatenate upstream's 'fast' Stage objects: nodes become Ready, pods Running/Ready at once."""
    documents = []
    for relative in KWOK_STAGE_FILES:
        path = module_dir / relative
        if not path.is_file():
            raise FileNotFoundError(f"kwok {versions.KWOK} has no {relative}")
        documents.append(path.read_text().strip())
    return "\n---\n".join(documents) + "\n"


def ensure_binaries(root: Path | None = None, echo: bool = True) -> Binaries:
    """Build whatever is missing and return every path; prints the time a cold build took."""
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    log = root / "build.log"
    started = time.monotonic()
    etcd_dir = build_etcd(root, log)
    kwok, stages = build_kwok(root, log)
    kubernetes_dir = build_kubernetes(root, log)
    elapsed = time.monotonic() - started
    if echo and elapsed > 5:
        print(f"modelrollout: built control-plane binaries in {elapsed:.0f}s (cache {root})", file=sys.stderr)
    return Binaries(
        etcd=etcd_dir / "etcd",
        kube_apiserver=kubernetes_dir / "kube-apiserver",
        kube_controller_manager=kubernetes_dir / "kube-controller-manager",
        kube_scheduler=kubernetes_dir / "kube-scheduler",
        kubectl=kubernetes_dir / "kubectl",
        kwok=kwok,
        kwok_stages=stages,
    )


def module_dir(module: str, version: str) -> Path:
    """Source tree of a Go module from the proxy (used for the Gateway API and Istio CRD YAML)."""
    root = cache_root()
    work = root / "build" / "modules"
    return Path(module_info(module, version, work, root / "build.log")["Dir"])


if __name__ == "__main__":
    print(ensure_binaries())
