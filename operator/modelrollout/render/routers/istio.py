"""Istio: one VirtualService with weighted routes to the stable and canary Services.

Header routes are extra http routes ahead of `primary` (Istio takes the first route that matches), all
to the canary. Exact, prefix and regex (RE2, matched against the whole value) are native; Istio has no
cookie match, so a cookie becomes a regex on the `cookie` header (header keys are lowercase in Istio).
What Istio cannot express: two conditions on one header in one route (a match's `headers` is a map keyed
by the header), e.g. two cookies.

A session affinity is accepted and ignored: Istio picks a weighted route per request (its consistent-hash
affinity works among one Service's pods, not between the routes), so the CRD refuses `sessionAffinity`.
"""

from __future__ import annotations

from typing import Any

from modelrollout.core.enums import Router
from modelrollout.core.headerroutes import HeaderMatch, MatchKind
from modelrollout.render.routers.base import ObjectKind, RouteTarget, Routing

VIRTUALSERVICE = ObjectKind("networking.istio.io", "v1", "virtualservices", "VirtualService")


def service_host(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local"


def _string_match(match: HeaderMatch) -> dict[str, str]:
    if match.cookie or match.kind is MatchKind.REGEX:
        return {"regex": match.regex()}
    return {match.kind.value: match.value}  # exact or prefix, as Istio names them


class IstioRouter:
    name = Router.ISTIO
    kinds: tuple[ObjectKind, ...] = (VIRTUALSERVICE,)

    def object_names(self, name: str) -> list[tuple[ObjectKind, str]]:
        return [(VIRTUALSERVICE, name)]

    def render(self, target: RouteTarget, routing: Routing) -> list[dict[str, Any]]:
        config = target.config

        def destination(service: str) -> dict[str, Any]:
            return {"host": service_host(service, target.namespace), "port": {"number": target.port}}

        route: dict[str, Any] = {
            "name": "primary",
            "route": [
                {"destination": destination(target.stable_service), "weight": routing.weights.stable},
                {"destination": destination(target.canary_service), "weight": routing.weights.canary},
            ],
        }
        if routing.weights.mirror > 0:
            route["mirror"] = destination(target.canary_service)
            route["mirrorPercentage"] = {"value": float(routing.weights.mirror)}
        by_header = [
            {
                "name": f"header-{header_route.name}",
                # One match entry: its headers must all hold (AND); separate entries would be OR.
                "match": [{"headers": {m.header.lower(): _string_match(m) for m in header_route.matches}}],
                "route": [{"destination": destination(target.canary_service), "weight": 100}],
            }
            for header_route in routing.header_routes
        ]
        spec: dict[str, Any] = {"hosts": list(config.get("hosts", [])), "http": [*by_header, route]}
        if config.get("gateways"):
            spec["gateways"] = list(config["gateways"])
        return [{**VIRTUALSERVICE.header(), "metadata": target.metadata(target.name), "spec": spec}]
