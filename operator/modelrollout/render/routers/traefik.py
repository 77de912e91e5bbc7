"""Traefik's own CRDs: an IngressRoute to a mirroring TraefikService in front of a weighted one.

Why not the HTTPRoute: Traefik's Gateway API provider does not implement RequestMirror (it turns the
whole route into 500s while the route says Accepted), but its TraefikService kinds do both jobs:
- `<name>-split` (weighted) splits live traffic between the stable and canary Services;
- `<name>` (mirroring) sends every request to the split and copies `percent` of them to the canary
  Service; the mirror's answers are discarded by Traefik, so a shadow never answers a client.
The IngressRoute `<name>` is the entry: the user's `match` rule on the given entry points.

Header routes are extra routes of that IngressRoute, each `(<match>) && <conditions>` straight to the
canary Service (so never mirrored): `Header` for an exact header, `HeaderRegexp` (Go regexp, searched:
hence anchored expressions) for a prefix, a regex and a cookie (on the `Cookie` header). Traefik can
express every route; it has no prefix or cookie matcher of its own, only the expressions.

A session affinity is the sticky cookie of the weighted `<name>-split` (`spec.weighted.sticky.cookie`):
Traefik's weighted round robin sets the cookie on a user's first answer, naming the member it picked, and
sends every later request carrying it to that same member, so each user stays on one revision. A member
of weight 0 is not in the balancer at all, so after an abort (canary at 0) a cookie naming the canary is
ignored and its holder goes to the stable. Header routes go straight to the canary Service, not through
the split, so they neither set nor read the cookie.
"""

from __future__ import annotations

import json
from typing import Any

from modelrollout.core.cohorts import SessionAffinity
from modelrollout.core.enums import Router
from modelrollout.core.headerroutes import HeaderMatch
from modelrollout.render.routers.base import ObjectKind, RouteTarget, Routing

INGRESSROUTE = ObjectKind("traefik.io", "v1alpha1", "ingressroutes", "IngressRoute")
TRAEFIKSERVICE = ObjectKind("traefik.io", "v1alpha1", "traefikservices", "TraefikService")
DEFAULT_MATCH = "PathPrefix(`/`)"


def split_name(name: str) -> str:
    return f"{name}-split"


def _string(value: str) -> str:
    """A string of Traefik's rule syntax: backticks (raw), or a quoted Go string if the value holds one."""
    return json.dumps(value, ensure_ascii=False) if "`" in value else f"`{value}`"


def _sticky(affinity: SessionAffinity) -> dict[str, Any]:
    """Weighted.Sticky of a TraefikService (Traefik v3): the cookie, and its max age when it lasts."""
    cookie: dict[str, Any] = {"name": affinity.cookie_name, "httpOnly": True, "sameSite": "lax"}
    if affinity.max_age > 0:
        cookie["maxAge"] = affinity.max_age
    return {"cookie": cookie}


def _condition(match: HeaderMatch) -> str:
    if match.exact:
        return f"Header({_string(match.header)}, {_string(match.value)})"
    return f"HeaderRegexp({_string(match.header)}, {_string(match.regex())})"


class TraefikRouter:
    name = Router.TRAEFIK
    kinds: tuple[ObjectKind, ...] = (INGRESSROUTE, TRAEFIKSERVICE)

    def object_names(self, name: str) -> list[tuple[ObjectKind, str]]:
        return [(TRAEFIKSERVICE, split_name(name)), (TRAEFIKSERVICE, name), (INGRESSROUTE, name)]

    def render(self, target: RouteTarget, routing: Routing) -> list[dict[str, Any]]:
        def service(name: str, **extra: Any) -> dict[str, Any]:
            return {"name": name, "kind": "Service", "port": target.port, **extra}

        weighted: dict[str, Any] = {
            "services": [
                service(target.stable_service, weight=routing.weights.stable),
                service(target.canary_service, weight=routing.weights.canary),
            ]
        }
        if routing.affinity is not None:
            weighted["sticky"] = _sticky(routing.affinity)
        split = {"weighted": weighted}
        mirrors = [service(target.canary_service, percent=routing.weights.mirror)] if routing.weights.mirror > 0 else []
        mirroring = {"mirroring": {"name": split_name(target.name), "kind": "TraefikService", "mirrors": mirrors}}
        match = target.config.get("match", DEFAULT_MATCH)
        route: dict[str, Any] = {
            "match": match,
            "kind": "Rule",
            "services": [{"name": target.name, "kind": "TraefikService"}],
        }
        # No priority set: Traefik ranks routes by the length of their rule, and each header route's rule
        # contains the main rule and is strictly longer, so it is tried first.
        by_header = [
            {
                "match": f"({match}) && {' && '.join(_condition(m) for m in header_route.matches)}",
                "kind": "Rule",
                "services": [service(target.canary_service)],
            }
            for header_route in routing.header_routes
        ]
        entry: dict[str, Any] = {"routes": [*by_header, route]}
        if target.config.get("entryPoints"):
            entry["entryPoints"] = list(target.config["entryPoints"])
        return [
            {**TRAEFIKSERVICE.header(), "metadata": target.metadata(split_name(target.name)), "spec": split},
            {**TRAEFIKSERVICE.header(), "metadata": target.metadata(target.name), "spec": mirroring},
            {**INGRESSROUTE.header(), "metadata": target.metadata(target.name), "spec": entry},
        ]
