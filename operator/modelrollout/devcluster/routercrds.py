"""The real CRDs of the data planes the routers write to (Gateway API, Istio, Traefik), for the local cluster.

They come from the projects' own Go modules (pinned in `versions`), fetched through the Go module
proxy like the binaries, so the objects the operator writes are validated by the real schemas.
"""

from __future__ import annotations

from pathlib import Path

from modelrollout.devcluster import versions
from modelrollout.devcluster.build import module_dir
from modelrollout.devcluster.traefik import traefik_crds


def gateway_api_crds() -> list[Path]:
    """Standard-channel CRDs (HTTPRoute with the RequestMirror `percent` field, Gateway, ...)."""
    directory = module_dir("sigs.k8s.io/gateway-api", versions.GATEWAY_API) / "config" / "crd" / "standard"
    crds = sorted(directory.glob("gateway.networking.k8s.io_*.yaml"))
    # The bundle's ValidatingAdmissionPolicy guards upgrades only; it is not a CRD.
    crds = [path for path in crds if "_vap_" not in path.name]
    if not any(path.name.endswith("_httproutes.yaml") for path in crds):
        raise FileNotFoundError(f"no HTTPRoute CRD in {directory}")
    return crds


def istio_crds() -> list[Path]:
    path = module_dir("istio.io/api", versions.ISTIO_API) / "kubernetes" / "customresourcedefinitions.gen.yaml"
    if not path.is_file():
        raise FileNotFoundError(path)
    return [path]


def router_crds() -> list[Path]:
    return [*gateway_api_crds(), *istio_crds(), *traefik_crds()]
