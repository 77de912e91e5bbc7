"""Istio: one VirtualService with weighted routes to the stable and canary Services."""

from __future__ import annotations

from typing import Any

from modelrollout.core.enums import Router
from modelrollout.core.rollout import Weights
from modelrollout.render.routers.base import ObjectKind, RouteTarget

VIRTUALSERVICE = ObjectKind("networking.istio.io", "v1", "virtualservices", "VirtualService")


def service_host(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local"


class IstioRouter:
    name = Router.ISTIO
    kinds: tuple[ObjectKind, ...] = (VIRTUALSERVICE,)

    def object_names(self, name: str) -> list[tuple[ObjectKind, str]]:
        return [(VIRTUALSERVICE, name)]

    def render(self, target: RouteTarget, weights: Weights) -> list[dict[str, Any]]:
        config = target.config

        def destination(service: str) -> dict[str, Any]:
            return {"host": service_host(service, target.namespace), "port": {"number": target.port}}

        route: dict[str, Any] = {
            "name": "primary",
            "route": [
                {"destination": destination(target.stable_service), "weight": weights.stable},
                {"destination": destination(target.canary_service), "weight": weights.canary},
            ],
        }
        if weights.mirror > 0:
            route["mirror"] = destination(target.canary_service)
            route["mirrorPercentage"] = {"value": float(weights.mirror)}
        spec: dict[str, Any] = {"hosts": list(config.get("hosts", [])), "http": [route]}
        if config.get("gateways"):
            spec["gateways"] = list(config["gateways"])
        return [{**VIRTUALSERVICE.header(), "metadata": target.metadata(target.name), "spec": spec}]
