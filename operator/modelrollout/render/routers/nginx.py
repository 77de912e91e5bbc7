"""NGINX Ingress: a stable Ingress and a canary Ingress carrying the canary-weight annotations.

A header route is two more annotations on the canary Ingress: `canary-by-header` with `-value` (an exact
match) or `-pattern` (a regex, searched). ingress-nginx reads only ONE header condition per canary: no
second condition (AND), no second route, so only the first route's first match is rendered (the CRD
refuses more for nginx). It has no prefix match and its cookie match takes only `always`/`never`, so a
prefix and a cookie become a pattern (a cookie's on the `Cookie` header). ingress-nginx checks the header
before the weight, so a matching request reaches the canary whatever the weight.

A session affinity is cookie affinity on both Ingresses (`affinity: cookie`, the cookie's name and, when
it lasts, its max age) plus `affinity-canary-behavior: sticky` on the canary Ingress: ingress-nginx then
sends a request carrying the cookie to the track that set it rather than re-rolling the canary weight.
"""

from __future__ import annotations

from typing import Any

from modelrollout.core.cohorts import SessionAffinity
from modelrollout.core.enums import Router
from modelrollout.core.headerroutes import HeaderRoute
from modelrollout.render.routers.base import ObjectKind, RouteTarget, Routing

INGRESS = ObjectKind("networking.k8s.io", "v1", "ingresses", "Ingress")
CANARY = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
CANARY_BY_HEADER = "nginx.ingress.kubernetes.io/canary-by-header"
CANARY_BY_HEADER_VALUE = "nginx.ingress.kubernetes.io/canary-by-header-value"
CANARY_BY_HEADER_PATTERN = "nginx.ingress.kubernetes.io/canary-by-header-pattern"
AFFINITY = "nginx.ingress.kubernetes.io/affinity"
SESSION_COOKIE_NAME = "nginx.ingress.kubernetes.io/session-cookie-name"
SESSION_COOKIE_MAX_AGE = "nginx.ingress.kubernetes.io/session-cookie-max-age"
AFFINITY_CANARY_BEHAVIOR = "nginx.ingress.kubernetes.io/affinity-canary-behavior"


def _by_header(header_routes: tuple[HeaderRoute, ...]) -> dict[str, str]:
    """The first route's first match as annotations (all ingress-nginx can hold), or none."""
    if not header_routes or not header_routes[0].matches:
        return {}
    match = header_routes[0].matches[0]
    if match.exact:
        return {CANARY_BY_HEADER: match.header, CANARY_BY_HEADER_VALUE: match.value}
    return {CANARY_BY_HEADER: match.header, CANARY_BY_HEADER_PATTERN: match.regex()}


def _affinity(affinity: SessionAffinity | None) -> dict[str, str]:
    """Cookie affinity annotations (on both Ingresses), or none."""
    if affinity is None:
        return {}
    annotations = {AFFINITY: "cookie", SESSION_COOKIE_NAME: affinity.cookie_name}
    if affinity.max_age > 0:
        annotations[SESSION_COOKIE_MAX_AGE] = str(affinity.max_age)
    return annotations


class NginxRouter:
    name = Router.NGINX
    kinds: tuple[ObjectKind, ...] = (INGRESS,)

    def object_names(self, name: str) -> list[tuple[ObjectKind, str]]:
        return [(INGRESS, name), (INGRESS, f"{name}-canary")]

    def render(self, target: RouteTarget, routing: Routing) -> list[dict[str, Any]]:
        sticky = _affinity(routing.affinity)
        canary = {CANARY: "true", CANARY_WEIGHT: str(routing.weights.canary), **_by_header(routing.header_routes)}
        if sticky:
            canary.update({**sticky, AFFINITY_CANARY_BEHAVIOR: "sticky"})
        return [
            self._ingress(target, target.name, target.stable_service, sticky or None),
            self._ingress(target, f"{target.name}-canary", target.canary_service, canary),
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
