"""Istio: one VirtualService with weighted routes to the stable and canary Services."""

from __future__ import annotations

from typing import Any

from modelrollout.core.rollout import Weights
from modelrollout.render.routers import RouteTarget

API_VERSION = "networking.istio.io/v1"


def service_host(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local"


class IstioRouter:
    name = "istio"

    def object_names(self, name: str) -> list[tuple[str, str, str]]:
        return [(API_VERSION, "VirtualService", name)]

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
        return [
            {
                "apiVersion": API_VERSION,
                "kind": "VirtualService",
                "metadata": target.metadata(target.name),
                "spec": spec,
            }
        ]
