"""Traefik's own CRDs: an IngressRoute to a mirroring TraefikService in front of a weighted one.

Why not the HTTPRoute: Traefik's Gateway API provider does not implement RequestMirror (it turns the
whole route into 500s while the route says Accepted), but its TraefikService kinds do both jobs:
- `<name>-split` (weighted) splits live traffic between the stable and canary Services;
- `<name>` (mirroring) sends every request to the split and copies `percent` of them to the canary
  Service; the mirror's answers are discarded by Traefik, so a shadow never answers a client.
The IngressRoute `<name>` is the entry: the user's `match` rule on the given entry points.
"""

from __future__ import annotations

from typing import Any

from modelrollout.core.enums import Router
from modelrollout.core.rollout import Weights
from modelrollout.render.routers.base import ObjectKind, RouteTarget

INGRESSROUTE = ObjectKind("traefik.io", "v1alpha1", "ingressroutes", "IngressRoute")
TRAEFIKSERVICE = ObjectKind("traefik.io", "v1alpha1", "traefikservices", "TraefikService")
DEFAULT_MATCH = "PathPrefix(`/`)"


def split_name(name: str) -> str:
    return f"{name}-split"


class TraefikRouter:
    name = Router.TRAEFIK
    kinds: tuple[ObjectKind, ...] = (INGRESSROUTE, TRAEFIKSERVICE)

    def object_names(self, name: str) -> list[tuple[ObjectKind, str]]:
        return [(TRAEFIKSERVICE, split_name(name)), (TRAEFIKSERVICE, name), (INGRESSROUTE, name)]

    def render(self, target: RouteTarget, weights: Weights) -> list[dict[str, Any]]:
        def service(name: str, **extra: Any) -> dict[str, Any]:
            return {"name": name, "kind": "Service", "port": target.port, **extra}

        split = {
            "weighted": {
                "services": [
                    service(target.stable_service, weight=weights.stable),
                    service(target.canary_service, weight=weights.canary),
                ]
            }
        }
        mirrors = [service(target.canary_service, percent=weights.mirror)] if weights.mirror > 0 else []
        mirroring = {"mirroring": {"name": split_name(target.name), "kind": "TraefikService", "mirrors": mirrors}}
        route: dict[str, Any] = {
            "match": target.config.get("match", DEFAULT_MATCH),
            "kind": "Rule",
            "services": [{"name": target.name, "kind": "TraefikService"}],
        }
        entry: dict[str, Any] = {"routes": [route]}
        if target.config.get("entryPoints"):
            entry["entryPoints"] = list(target.config["entryPoints"])
        return [
            {**TRAEFIKSERVICE.header(), "metadata": target.metadata(split_name(target.name)), "spec": split},
            {**TRAEFIKSERVICE.header(), "metadata": target.metadata(target.name), "spec": mirroring},
            {**INGRESSROUTE.header(), "metadata": target.metadata(target.name), "spec": entry},
        ]
