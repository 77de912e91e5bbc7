"""Every router's rendering against the real schemas: each object is applied with `--dry-run=server`, so
the apiserver validates it with the data planes' own CRDs (Gateway API standard channel, Istio, Traefik)
and the built-in Ingress, and nothing is stored."""

from __future__ import annotations

import json

import pytest

from modelrollout.core.cohorts import SessionAffinity
from modelrollout.core.enums import Router
from modelrollout.core.headerroutes import HeaderMatch, HeaderRoute, MatchKind
from modelrollout.core.rollout import Weights
from modelrollout.core.routers import MIRRORING_ROUTERS
from modelrollout.render.routers import ADAPTERS, RouteTarget, Routing, router_for
from tests.integration.helpers import SAMPLE

SAMPLES = SAMPLE.parent

CONFIG = {
    Router.GATEWAY_API: {
        "parentRefs": [{"name": "public", "namespace": "gateways"}],
        "hostnames": ["fraud.example.com"],
    },
    Router.ISTIO: {"hosts": ["fraud.example.com"], "gateways": ["gateways/public"]},
    Router.NGINX: {"host": "fraud.example.com"},
    Router.TRAEFIK: {"entryPoints": ["web"], "match": "Host(`fraud.example.com`)"},
}
ROUTES = {
    "exact header": HeaderRoute("qa", (HeaderMatch("X-Model-QA", "yes"),)),
    "prefix header": HeaderRoute("team", (HeaderMatch("x-team", "fraud.", MatchKind.PREFIX),)),
    "regex header": HeaderRoute("client", (HeaderMatch("x-client", "^v[0-9]+$", MatchKind.REGEX),)),
    "cookie": HeaderRoute("beta", (HeaderMatch("model", "new", cookie=True),)),
    "two matches": HeaderRoute("qa-beta", (HeaderMatch("x-model-qa", "yes"), HeaderMatch("model", "new", cookie=True))),
}
ROUTERS = [adapter.name for adapter in ADAPTERS if adapter.name != Router.NONE]


def cases() -> list:
    found = []
    for router in ROUTERS:
        found.append(pytest.param(router, Weights(90, 10), (), id=f"{router}-weights"))
        if router in MIRRORING_ROUTERS:
            found.append(pytest.param(router, Weights(100, 0, 50), (), id=f"{router}-mirror"))
        for label, route in ROUTES.items():
            if router == Router.NGINX and len(route.matches) > 1:
                continue  # ingress-nginx holds one condition (the CRD refuses more)
            found.append(pytest.param(router, Weights(90, 10), (route,), id=f"{router}-{label}"))
        if router != Router.NGINX:
            every = tuple(ROUTES.values())
            found.append(pytest.param(router, Weights(100, 0, 50), every, id=f"{router}-every-route-and-a-mirror"))
    return found


def target_in(namespace: str, router: Router) -> RouteTarget:
    return RouteTarget(
        name="fraud",
        namespace=namespace,
        port=80,
        stable_service="fraud-stable",
        canary_service="fraud-canary",
        config=CONFIG[router],
        labels={"app.kubernetes.io/name": "fraud"},
        owner={},
    )


def assert_valid(control_plane, namespace: str, rendered: list[dict]) -> None:
    assert rendered
    for body in rendered:
        result = control_plane.kubectl(
            "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(body), check=False
        )
        assert result.returncode == 0, f"{body['kind']} {body['metadata']['name']}: {result.stderr}"


@pytest.mark.parametrize(("router", "weights", "header_routes"), cases())
def test_every_rendering_is_valid_for_the_real_schema(control_plane, namespace, router, weights, header_routes):
    rendered = router_for(router).render(target_in(namespace, router), Routing(weights, header_routes))
    assert_valid(control_plane, namespace, rendered)


# Sticky cohorts: only Traefik and NGINX render a session affinity (the CRD refuses it for the others).
AFFINITIES = {"session-cookie": SessionAffinity("model-cohort"), "max-age": SessionAffinity("model-cohort", 86400)}


def affinity_cases() -> list:
    found = []
    for router in (Router.TRAEFIK, Router.NGINX):
        for label, affinity in AFFINITIES.items():
            found.append(pytest.param(router, (), affinity, id=f"{router}-affinity-{label}"))
        found.append(
            pytest.param(router, (ROUTES["exact header"],), AFFINITIES["max-age"], id=f"{router}-affinity-and-a-header")
        )
    return found


@pytest.mark.parametrize(("router", "header_routes", "affinity"), affinity_cases())
def test_every_sticky_rendering_is_valid_for_the_real_schema(control_plane, namespace, router, header_routes, affinity):
    target = target_in(namespace, router)
    rendered = router_for(router).render(target, Routing(Weights(90, 10), header_routes, affinity))
    assert rendered != router_for(router).render(target, Routing(Weights(90, 10), header_routes))
    assert_valid(control_plane, namespace, rendered)


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_sample_is_accepted_by_the_real_crd(control_plane, namespace, sample):
    result = control_plane.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(sample), check=False)
    assert result.returncode == 0, f"{sample.name}: {result.stderr}"
