"""NGINX Ingress: a stable Ingress and a canary Ingress carrying the canary-weight annotations."""

from __future__ import annotations

from typing import Any

from modelrollout.core.enums import Router
from modelrollout.core.rollout import Weights
from modelrollout.render.routers.base import ObjectKind, RouteTarget

INGRESS = ObjectKind("networking.k8s.io", "v1", "ingresses", "Ingress")
CANARY = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"


class NginxRouter:
    name = Router.NGINX
    kinds: tuple[ObjectKind, ...] = (INGRESS,)

    def object_names(self, name: str) -> list[tuple[ObjectKind, str]]:
        return [(INGRESS, name), (INGRESS, f"{name}-canary")]

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
        return {**INGRESS.header(), "metadata": target.metadata(name, annotations), "spec": spec}
