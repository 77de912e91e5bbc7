"""Traffic routers: each renders the routing objects the operator owns for one data plane.

Rules:
- `render(target, routing)` is pure and returns complete objects (server-side applied as
  a whole), so Git holds only the ModelDeployment and the routing objects never drift.
- Weights always add up to 100 between the stable and canary tracks; with no canary both tracks'
  Services select the stable pods, so every route stays valid.
- Header routes take precedence over the weighted route, each all to the canary Service and never
  mirrored, in the objects the weights already use; what a data plane cannot express is said in its
  adapter's docstring.
- `none` renders nothing: without a data plane the weight is the ratio of ready pods (and there is no
  header to route by).
- One adapter per `Router` member, one line each in `ADAPTERS` (a unit test checks it); what a router
  can do (mirroring, weighted splits) is declared in `core/routers.py`, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from modelrollout.core.enums import Router
from modelrollout.render.routers.base import ObjectKind, RouterAdapter, RouteTarget, Routing
from modelrollout.render.routers.gatewayapi import GatewayAPIRouter
from modelrollout.render.routers.istio import IstioRouter
from modelrollout.render.routers.nginx import NginxRouter
from modelrollout.render.routers.traefik import TraefikRouter

__all__ = ["ADAPTERS", "NoRouter", "ObjectKind", "RouteTarget", "RouterAdapter", "Routing", "registry", "router_for"]


class NoRouter:
    """No data plane: the Service selects every revision's pods; replica counts set the split."""

    name = Router.NONE
    kinds: tuple[ObjectKind, ...] = ()

    def render(self, target: RouteTarget, routing: Routing) -> list[dict[str, Any]]:
        return []

    def object_names(self, name: str) -> list[tuple[ObjectKind, str]]:
        return []


ADAPTERS: tuple[RouterAdapter, ...] = (
    GatewayAPIRouter(),
    IstioRouter(),
    NginxRouter(),
    TraefikRouter(),
    NoRouter(),
)


_REGISTRY: Mapping[Router, RouterAdapter] = MappingProxyType({adapter.name: adapter for adapter in ADAPTERS})


def registry() -> Mapping[Router, RouterAdapter]:
    return _REGISTRY


def router_for(name: Router | str) -> RouterAdapter:
    routers = _REGISTRY
    if name not in routers:
        raise ValueError(f"unknown traffic router {name!r}; known: {', '.join(sorted(routers))}")
    return routers[name]
