"""`modelrollout dev-cluster build`: everything the local stack runs, built or installed once, cached.

The tests and the demo run inside a private network with no internet (see `netns`), so this is the
one step that may download: the control plane, the data plane (Traefik), the GitOps controllers
(Flux), the real model servers (MLServer in its own venv, and the models they serve) and the source
trees the CRDs come from. A second run finds everything in the cache and builds nothing.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from modelrollout.devcluster import flux, helm, image, prometheus, routercrds, traefik, wheelhouse
from modelrollout.devcluster.build import cache_root, ensure_binaries
from modelrollout.modelserver import install, models


class PreparationFailed(RuntimeError):
    """A part could not be built or installed; the message names it and carries the tool's own output."""


@dataclass(frozen=True)
class Prepared:
    """One part of the local stack, where it is, and how long making it ready took."""

    name: str
    where: Path
    seconds: float

    def line(self) -> str:
        took = "cached" if self.seconds < 5 else f"built in {self.seconds:.0f}s"
        return f"{self.name:<46} {took:<16} {self.where}"


PARTS: tuple[tuple[str, Callable[[Path], Path]], ...] = (
    ("control plane (etcd, kube-*, kwok)", lambda root: ensure_binaries(root).kube_apiserver.parent.parent),
    ("Traefik (data plane)", traefik.ensure_traefik),
    ("Flux source + kustomize controllers", lambda root: flux.ensure_flux(root).source_controller.parent),
    ("Prometheus (Kubernetes discovery)", prometheus.kubernetes_sd_binary),
    ("MLServer (model servers)", lambda root: install.ensure_mlserver(root).parent.parent),
    ("demo models (scikit-learn, trained)", lambda root: models.ensure_models(root).directory),
    ("data plane CRDs (Gateway API, Istio, Traefik)", lambda root: routercrds.router_crds()[0].parent),
    ("operator image (Dockerfile, buildah)", image.ensure_image),
    ("Helm (lints and renders the chart)", lambda root: helm.ensure_helm(root).parent),
    ("wheelhouse (the wheel test's offline deps)", wheelhouse.ensure_wheelhouse),
)
FIRST_NOTICE_SECONDS = 10.0  # a cached part is ready well before this: it prints nothing but its line
NOTICE_EVERY_SECONDS = 30.0


@contextlib.contextmanager
def _progress(name: str, say: Callable[[str], None]) -> Iterator[None]:
    """While `name` takes long (a cold build), say so now and then, so the first run does not look hung."""
    done = threading.Event()
    started = time.monotonic()

    def tell() -> None:
        wait = FIRST_NOTICE_SECONDS
        while not done.wait(wait):
            say(f"  … {name}: building, {time.monotonic() - started:.0f}s so far")
            wait = NOTICE_EVERY_SECONDS

    thread = threading.Thread(target=tell, daemon=True, name="build-progress")
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def prepare_all(root: Path | None = None, say: Callable[[str], None] = print) -> Iterator[Prepared]:
    """Build or install every part the tests and the demo need, yielding each as it is ready."""
    root = root or cache_root()
    for name, make in PARTS:
        started = time.monotonic()
        try:
            with _progress(name, say):
                where = make(root)
        except (RuntimeError, ValueError, OSError, subprocess.SubprocessError) as error:
            raise PreparationFailed(f"{name} failed after {time.monotonic() - started:.0f}s: {error}") from error
        yield Prepared(name, where, time.monotonic() - started)
