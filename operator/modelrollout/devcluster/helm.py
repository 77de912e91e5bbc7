"""Helm, to lint, render and install the chart in manifests/helm: built from the Go module proxy, once.

Rules:
- Debian bookworm packages no helm, and no prebuilt binary is downloaded: `go install` of the pinned
  release works as is, because helm's go.mod has no `replace` directives.
- The version and Kubernetes version helm reports are set the way upstream's Makefile sets them (ldflags),
  the Kubernetes one from the client-go that helm's go.mod requires, never by hand, so `helm version` and
  the default `.Capabilities.KubeVersion` of `helm template` are upstream's.
- The binary lands in `<cache>/bin/helm-<version>/`; a complete directory is a cache hit.
- The chart's crds/ holds copies of the CRD files crds/kustomization.yaml lists, not symlinks: Helm follows
  symlinks on a local chart, but Flux's HelmRelease from a GitRepository does not (fluxcd/flux2#4088), nor
  do zip downloads or Windows checkouts, and a chart without its CRDs installs silently. `python -m
  modelrollout.devcluster.helm --sync-crds` rewrites the copies; a test fails when they differ.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import yaml

from modelrollout.devcluster.build import cache_root, go_run, install_atomically, is_complete, module_info

VERSION = "v3.22.0"
MODULE = "helm.sh/helm/v3"
COMMAND = f"{MODULE}/cmd/helm"
REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "manifests" / "helm" / "modelrollout"
CLIENT_GO = re.compile(r"^\s*k8s\.io/client-go\s+v0\.(\d+)\.\d+", re.MULTILINE)


def ldflags(version: str, helm_gomod: str) -> str:
    """Upstream Makefile's ldflags: helm's own version, and Kubernetes 1.N for client-go v0.N."""
    found = CLIENT_GO.search(helm_gomod)
    if not found:
        raise ValueError(f"helm {version}'s go.mod requires no k8s.io/client-go v0.N.M")
    minor = found.group(1)
    flags = ["-s", "-w", f"-X {MODULE}/internal/version.version={version}"]
    flags.append(f"-X {MODULE}/internal/version.gitTreeState=clean")
    for package in ("pkg/lint/rules", "pkg/chartutil"):
        flags += [f"-X {MODULE}/{package}.k8sVersionMajor=1", f"-X {MODULE}/{package}.k8sVersionMinor={minor}"]
    return " ".join(flags)


def helm_path(root: Path | None = None) -> Path:
    """Where the pinned helm is (or will be) in the cache."""
    return (root or cache_root()) / "bin" / f"helm-{VERSION}" / "helm"


def ensure_helm(root: Path | None = None) -> Path:
    """Build helm if the cache has none, and return its path."""
    root = root or cache_root()
    final = helm_path(root).parent
    if is_complete(final, ("helm",)):
        return final / "helm"
    log = root / "build.log"
    work = root / "build" / f"helm-{VERSION}"
    work.mkdir(parents=True, exist_ok=True)
    staging_dir = work / "out"
    shutil.rmtree(staging_dir, ignore_errors=True)
    staging_dir.mkdir()
    gomod = Path(module_info(MODULE, VERSION, work, log)["GoMod"]).read_text()
    install = ["go", "install", "-trimpath", "-ldflags", ldflags(VERSION, gomod), f"{COMMAND}@{VERSION}"]
    go_run(install, work, log, extra_env={"GOBIN": str(staging_dir)})
    install_atomically(staging_dir, final)
    return final / "helm"


def crd_files(repo: Path = REPO) -> list[Path]:
    """The CRD files the kustomize install applies (crds/kustomization.yaml's resources), in its order."""
    kustomization = yaml.safe_load((repo / "crds" / "kustomization.yaml").read_text())
    return [repo / "crds" / name for name in kustomization["resources"]]


def stale_chart_crds(repo: Path = REPO) -> list[str]:
    """What in the chart's crds/ differs from crds/: missing, changed or extra files (empty when in sync)."""
    chart_crds = repo / "manifests" / "helm" / "modelrollout" / "crds"
    wanted = {path.name: path.read_bytes() for path in crd_files(repo)}
    present = {path.name: path.read_bytes() for path in chart_crds.glob("*") if path.is_file()}
    problems = [f"{name} is missing" for name in wanted if name not in present]
    problems += [
        f"{name} differs from crds/{name}" for name in wanted if name in present and present[name] != wanted[name]
    ]
    problems += [f"{name} is not in crds/kustomization.yaml" for name in present if name not in wanted]
    return problems


def sync_chart_crds(repo: Path = REPO) -> list[Path]:
    """Make the chart's crds/ an exact copy of the CRD files in crds/ and return what it holds now."""
    chart_crds = repo / "manifests" / "helm" / "modelrollout" / "crds"
    chart_crds.mkdir(parents=True, exist_ok=True)
    sources = crd_files(repo)
    for extra in set(chart_crds.glob("*")) - {chart_crds / path.name for path in sources}:
        extra.unlink()
    for source in sources:
        shutil.copyfile(source, chart_crds / source.name)
    return [chart_crds / path.name for path in sources]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The Helm chart's CRD copies, and the pinned helm binary")
    parser.add_argument("--sync-crds", action="store_true", help="copy crds/ into the chart's crds/")
    args = parser.parse_args(argv)
    if args.sync_crds:
        for path in sync_chart_crds():
            print(path.relative_to(REPO))
    else:
        print(ensure_helm())
    return 0


if __name__ == "__main__":
    sys.exit(main())
