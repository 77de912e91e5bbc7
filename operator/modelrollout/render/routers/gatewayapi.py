"""Gateway API: one HTTPRoute with weighted backendRefs to the stable and canary Services."""

from __future__ import annotations

from typing import Any

from modelrollout.core.enums import Router
from modelrollout.core.rollout import Weights
from modelrollout.render.routers.base import ObjectKind, RouteTarget

HTTPROUTE = ObjectKind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")


def _backend(service: str, port: int, weight: int) -> dict[str, Any]:
    return {"group": "", "kind": "Service", "name": service, "port": port, "weight": weight}


class GatewayAPIRouter:
    name = Router.GATEWAY_API
    kinds: tuple[ObjectKind, ...] = (HTTPROUTE,)

    def object_names(self, name: str) -> list[tuple[ObjectKind, str]]:
        return [(HTTPROUTE, name)]

    def render(self, target: RouteTarget, weights: Weights) -> list[dict[str, Any]]:
        config = target.config
        rule: dict[str, Any] = {
            "matches": [{"path": {"type": "PathPrefix", "value": config.get("pathPrefix", "/")}}],
            "backendRefs": [
                _backend(target.stable_service, target.port, weights.stable),
                _backend(target.canary_service, target.port, weights.canary),
            ],
        }
        if weights.mirror > 0:
            rule["filters"] = [
                {
                    "type": "RequestMirror",
                    "requestMirror": {
                        "backendRef": {
                            "group": "",
                            "kind": "Service",
                            "name": target.canary_service,
                            "port": target.port,
                        },
                        "percent": weights.mirror,
                    },
                }
            ]
        spec: dict[str, Any] = {"parentRefs": [dict(ref) for ref in config.get("parentRefs", [])], "rules": [rule]}
        if config.get("hostnames"):
            spec["hostnames"] = list(config["hostnames"])
        return [{**HTTPROUTE.header(), "metadata": target.metadata(target.name), "spec": spec}]
