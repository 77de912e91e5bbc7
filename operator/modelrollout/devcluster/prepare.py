"""`modelrollout dev-cluster build`: everything the local stack runs, built or installed once, cached.

The tests and the demo run inside a private network with no internet (see `netns`), so this is the
one step that may download: the control plane, the data plane (Traefik), the GitOps controllers
(Flux), the real model servers (MLServer in its own venv, and the models they serve) and the source
trees the CRDs come from. A second run finds everything in the cache and builds nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelrollout.devcluster import flux, prometheus, routercrds, traefik
from modelrollout.devcluster.build import cache_root, ensure_binaries
from modelrollout.modelserver import install, models


@dataclass(frozen=True)
class Prepared:
    """One part of the local stack, where it is, and how long making it ready took."""

    name: str
    where: Path
    seconds: float

    def line(self) -> str:
        took = "cached" if self.seconds < 5 else f"built in {self.seconds:.0f}s"
        return f"{self.name:<46} {took:<16} {self.where}"


def _timed(name: str, make: Callable[[], Path]) -> Prepared:
    started = time.monotonic()
    where = make()
    return Prepared(name, where, time.monotonic() - started)


def prepare_all(root: Path | None = None) -> list[Prepared]:
    """Build or install every part the tests and the demo need; the slow parts print as they finish."""
    root = root or cache_root()
    parts = [
        _timed("control plane (etcd, kube-*, kwok)", lambda: ensure_binaries(root).kube_apiserver.parent.parent),
        _timed("Traefik (data plane)", lambda: traefik.ensure_traefik(root)),
        _timed("Flux source + kustomize controllers", lambda: flux.ensure_flux(root).source_controller.parent),
        _timed("Prometheus (Kubernetes discovery)", lambda: prometheus.kubernetes_sd_binary(root)),
        _timed("MLServer (model servers)", lambda: install.ensure_mlserver(root).parent.parent),
        _timed("demo models (scikit-learn, trained)", lambda: models.ensure_models(root).directory),
        _timed("data plane CRDs (Gateway API, Istio, Traefik)", lambda: routercrds.router_crds()[0].parent),
    ]
    return parts
