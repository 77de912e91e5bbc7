"""Traffic routers: each renders the routing objects the operator owns for one data plane.

Rules:
- `render(target, weights)` is pure and returns complete objects (server-side applied as a whole),
  so Git holds only the ModelDeployment and the routing objects never drift.
- Weights always add up to 100 between the stable and canary tracks; with no canary both tracks'
  Services select the stable pods, so every route stays valid.
- `none` renders nothing: without a data plane the weight is the ratio of ready pods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from modelrollout.core.rollout import Weights


@dataclass(frozen=True)
class RouteTarget:
    """What every router needs to know about the ModelDeployment it routes for."""

    name: str
    namespace: str
    port: int
    stable_service: str
    canary_service: str
    config: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    owner: dict[str, Any] = field(default_factory=dict)

    def metadata(self, name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "labels": dict(self.labels),
            "ownerReferences": [self.owner] if self.owner else [],
        }
        if annotations:
            metadata["annotations"] = annotations
        return metadata


class Router(Protocol):
    name: str

    def render(self, target: RouteTarget, weights: Weights) -> list[dict[str, Any]]: ...

    def object_names(self, name: str) -> list[tuple[str, str, str]]:
        """(apiVersion, kind, name) of every object `render` writes for a ModelDeployment `name`."""
        ...


def registry() -> dict[str, Router]:
    from modelrollout.render.routers.gatewayapi import GatewayAPIRouter
    from modelrollout.render.routers.istio import IstioRouter
    from modelrollout.render.routers.nginx import NginxRouter

    routers: list[Router] = [GatewayAPIRouter(), IstioRouter(), NginxRouter(), NoRouter()]
    return {router.name: router for router in routers}


class NoRouter:
    """No data plane: the Service selects every revision's pods; replica counts set the split."""

    name = "none"

    def render(self, target: RouteTarget, weights: Weights) -> list[dict[str, Any]]:
        return []

    def object_names(self, name: str) -> list[tuple[str, str, str]]:
        return []


def router_for(name: str) -> Router:
    routers = registry()
    if name not in routers:
        raise ValueError(f"unknown traffic router {name!r}; known: {', '.join(sorted(routers))}")
    return routers[name]
