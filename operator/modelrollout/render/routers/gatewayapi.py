"""Gateway API: one HTTPRoute with weighted backendRefs to the stable and canary Services.

Header routes are extra rules on the same path, all to the canary. What Gateway API cannot express, and
how it is rendered instead:
- no prefix and no cookie match: both become a `RegularExpression` on the header (`Cookie` for a cookie),
  whose support and dialect are implementation-specific (RE2 on Envoy, Go's regexp on Traefik);
- no two conditions on one header in a match (header names are the list's map key): two cookies, or two
  conditions on one header, in one route do not fit one rule;
- at most 16 rules per HTTPRoute, the weighted one included.

A session affinity is accepted and ignored: `sessionPersistence` is in Gateway API's experimental channel
only, so the CRD refuses `sessionAffinity` with this router.
"""

from __future__ import annotations

from typing import Any

from modelrollout.core.enums import Router
from modelrollout.core.headerroutes import HeaderMatch
from modelrollout.render.routers.base import ObjectKind, RouteTarget, Routing

HTTPROUTE = ObjectKind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")


def _backend(service: str, port: int, weight: int) -> dict[str, Any]:
    return {"group": "", "kind": "Service", "name": service, "port": port, "weight": weight}


def _header_match(match: HeaderMatch) -> dict[str, str]:
    if match.exact:
        return {"type": "Exact", "name": match.header, "value": match.value}
    return {"type": "RegularExpression", "name": match.header, "value": match.regex()}


class GatewayAPIRouter:
    name = Router.GATEWAY_API
    kinds: tuple[ObjectKind, ...] = (HTTPROUTE,)

    def object_names(self, name: str) -> list[tuple[ObjectKind, str]]:
        return [(HTTPROUTE, name)]

    def render(self, target: RouteTarget, routing: Routing) -> list[dict[str, Any]]:
        config = target.config
        path = {"type": "PathPrefix", "value": config.get("pathPrefix", "/")}
        rule: dict[str, Any] = {
            "matches": [{"path": dict(path)}],
            "backendRefs": [
                _backend(target.stable_service, target.port, routing.weights.stable),
                _backend(target.canary_service, target.port, routing.weights.canary),
            ],
        }
        if routing.weights.mirror > 0:
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
                        "percent": routing.weights.mirror,
                    },
                }
            ]
        # Listed after the weighted rule, which stays `rules[0]` for whoever reads the route: Gateway API ranks
        # matches on one path by their number of header matches, so a header rule wins wherever it is listed.
        header_rules = [
            {
                "matches": [{"path": dict(path), "headers": [_header_match(match) for match in route.matches]}],
                "backendRefs": [_backend(target.canary_service, target.port, 100)],
            }
            for route in routing.header_routes
        ]
        spec: dict[str, Any] = {
            "parentRefs": [dict(ref) for ref in config.get("parentRefs", [])],
            "rules": [rule, *header_rules],
        }
        if config.get("hostnames"):
            spec["hostnames"] = list(config["hostnames"])
        return [{**HTTPROUTE.header(), "metadata": target.metadata(target.name), "spec": spec}]
