"""NGINX Ingress: a stable Ingress and a canary Ingress carrying the canary-weight annotations."""

from __future__ import annotations

from typing import Any

from modelrollout.core.rollout import Weights
from modelrollout.render.routers import RouteTarget

API_VERSION = "networking.k8s.io/v1"
CANARY = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"


class NginxRouter:
    name = "nginx"

    def object_names(self, name: str) -> list[tuple[str, str, str]]:
        return [(API_VERSION, "Ingress", name), (API_VERSION, "Ingress", f"{name}-canary")]

    def render(self, target: RouteTarget, weights: Weights) -> list[dict[str, Any]]:
        return [
            self._ingress(target, target.name, target.stable_service, None),
            self._ingress(
                target,
                f"{target.name}-canary",
                target.canary_service,
                {CANARY: "true", CANARY_WEIGHT: str(weights.canary)},
            ),
        ]

    def _ingress(
        self, target: RouteTarget, name: str, service: str, annotations: dict[str, str] | None
    ) -> dict[str, Any]:
        config = target.config
        host = config["host"]
        spec: dict[str, Any] = {
            "ingressClassName": config.get("ingressClassName", "nginx"),
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": config.get("path", "/"),
                                "pathType": "Prefix",
                                "backend": {"service": {"name": service, "port": {"number": target.port}}},
                            }
                        ]
                    },
                }
            ],
        }
        if config.get("tlsSecretName"):
            spec["tls"] = [{"hosts": [host], "secretName": config["tlsSecretName"]}]
        return {
            "apiVersion": API_VERSION,
            "kind": "Ingress",
            "metadata": target.metadata(name, annotations),
            "spec": spec,
        }
