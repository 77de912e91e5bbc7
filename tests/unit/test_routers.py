"""Golden tests of the routers' rendered objects: exactly what the operator writes."""

import re
from collections import Counter

import pytest

from modelrollout.core.enums import Router
from modelrollout.core.rollout import Weights
from modelrollout.core.routers import TRAITS
from modelrollout.render.routers import ADAPTERS, RouteTarget, registry, router_for

OWNER = {
    "apiVersion": "modelrollout.io/v1alpha1",
    "kind": "ModelDeployment",
    "name": "fraud",
    "uid": "u1",
    "controller": True,
    "blockOwnerDeletion": True,
}


def target(config):
    return RouteTarget(
        name="fraud",
        namespace="models",
        port=80,
        stable_service="fraud-stable",
        canary_service="fraud-canary",
        config=config,
        labels={"app.kubernetes.io/name": "fraud"},
        owner=OWNER,
    )


METADATA = {
    "name": "fraud",
    "namespace": "models",
    "labels": {"app.kubernetes.io/name": "fraud"},
    "ownerReferences": [OWNER],
}


def test_gateway_api_httproute():
    config = {
        "parentRefs": [{"name": "public", "namespace": "gateways"}],
        "hostnames": ["fraud.example.com"],
        "pathPrefix": "/score",
    }
    assert router_for("gatewayAPI").render(target(config), Weights(95, 5)) == [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": METADATA,
            "spec": {
                "parentRefs": [{"name": "public", "namespace": "gateways"}],
                "hostnames": ["fraud.example.com"],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/score"}}],
                        "backendRefs": [
                            {"group": "", "kind": "Service", "name": "fraud-stable", "port": 80, "weight": 95},
                            {"group": "", "kind": "Service", "name": "fraud-canary", "port": 80, "weight": 5},
                        ],
                    }
                ],
            },
        }
    ]


def test_gateway_api_mirror_filter():
    (route,) = router_for("gatewayAPI").render(target({"parentRefs": [{"name": "gw"}]}), Weights(100, 0, 40))
    assert route["spec"]["rules"][0]["filters"] == [
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"group": "", "kind": "Service", "name": "fraud-canary", "port": 80},
                "percent": 40,
            },
        }
    ]


def test_istio_virtualservice():
    config = {"hosts": ["fraud.example.com"], "gateways": ["gateways/public"]}
    assert router_for("istio").render(target(config), Weights(75, 25)) == [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": METADATA,
            "spec": {
                "hosts": ["fraud.example.com"],
                "gateways": ["gateways/public"],
                "http": [
                    {
                        "name": "primary",
                        "route": [
                            {
                                "destination": {
                                    "host": "fraud-stable.models.svc.cluster.local",
                                    "port": {"number": 80},
                                },
                                "weight": 75,
                            },
                            {
                                "destination": {
                                    "host": "fraud-canary.models.svc.cluster.local",
                                    "port": {"number": 80},
                                },
                                "weight": 25,
                            },
                        ],
                    }
                ],
            },
        }
    ]


def test_nginx_stable_and_canary_ingresses():
    config = {"host": "fraud.example.com", "ingressClassName": "nginx", "path": "/", "tlsSecretName": "fraud-tls"}
    stable, canary = router_for("nginx").render(target(config), Weights(50, 50))
    assert stable["metadata"]["name"] == "fraud" and "annotations" not in stable["metadata"]
    assert stable["spec"]["rules"][0]["http"]["paths"][0]["backend"] == {
        "service": {"name": "fraud-stable", "port": {"number": 80}}
    }
    assert stable["spec"]["tls"] == [{"hosts": ["fraud.example.com"], "secretName": "fraud-tls"}]
    assert canary["metadata"]["name"] == "fraud-canary"
    assert canary["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/canary": "true",
        "nginx.ingress.kubernetes.io/canary-weight": "50",
    }
    assert canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "fraud-canary"


def traefik_service(name: str, spec: dict) -> dict:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": {**METADATA, "name": name},
        "spec": spec,
    }


def test_traefik_weighted_split_behind_a_mirroring_service_behind_an_ingressroute():
    config = {"entryPoints": ["web"], "match": "Host(`fraud.example.com`) && PathPrefix(`/v2`)"}
    assert router_for("traefik").render(target(config), Weights(95, 5)) == [
        traefik_service(
            "fraud-split",
            {
                "weighted": {
                    "services": [
                        {"name": "fraud-stable", "kind": "Service", "port": 80, "weight": 95},
                        {"name": "fraud-canary", "kind": "Service", "port": 80, "weight": 5},
                    ]
                }
            },
        ),
        traefik_service("fraud", {"mirroring": {"name": "fraud-split", "kind": "TraefikService", "mirrors": []}}),
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "IngressRoute",
            "metadata": METADATA,
            "spec": {
                "entryPoints": ["web"],
                "routes": [
                    {
                        "match": "Host(`fraud.example.com`) && PathPrefix(`/v2`)",
                        "kind": "Rule",
                        "services": [{"name": "fraud", "kind": "TraefikService"}],
                    }
                ],
            },
        },
    ]


def test_traefik_shadow_mirrors_a_percent_to_the_canary_service_and_routes_everything_to_the_stable():
    split, mirroring, route = router_for("traefik").render(target({}), Weights(100, 0, mirror=30))
    assert [s["weight"] for s in split["spec"]["weighted"]["services"]] == [100, 0]
    assert mirroring["spec"]["mirroring"]["mirrors"] == [
        {"name": "fraud-canary", "kind": "Service", "port": 80, "percent": 30}
    ]
    assert route["spec"] == {
        "routes": [
            {"match": "PathPrefix(`/`)", "kind": "Rule", "services": [{"name": "fraud", "kind": "TraefikService"}]}
        ]
    }


CONFIGS = {
    Router.GATEWAY_API: {"parentRefs": [{"name": "gw"}]},
    Router.ISTIO: {"hosts": ["h"]},
    Router.NGINX: {"host": "h"},
    Router.TRAEFIK: {},
    Router.NONE: {},
}


def test_every_router_has_exactly_one_adapter_and_one_traits_entry():
    assert Counter(adapter.name for adapter in ADAPTERS) == Counter(Router)
    assert set(TRAITS) == set(Router) and set(registry()) == set(Router)


@pytest.mark.parametrize("name", list(Router))
def test_object_names_match_what_render_writes(name):
    router = router_for(name)
    rendered = [
        (o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in router.render(target(CONFIGS[name]), Weights())
    ]
    assert rendered == [(kind.api_version, kind.kind, name) for kind, name in router.object_names("fraud")]
    assert {kind for kind, _ in router.object_names("fraud")} == set(router.kinds)


@pytest.mark.parametrize("name", list(Router))
def test_the_kube_client_addresses_every_routing_object_by_the_declared_kind(name):
    from modelrollout.controller.routing import ROUTER_KINDS
    from modelrollout.kube.client import kind_of

    router = router_for(name)
    for body, (declared, _) in zip(
        router.render(target(CONFIGS[name]), Weights()), router.object_names("fraud"), strict=True
    ):
        kind = kind_of(body)
        assert kind in ROUTER_KINDS[name]
        assert (kind.group, kind.version, kind.plural, kind.kind) == (
            declared.group,
            declared.version,
            declared.plural,
            declared.kind,
        )


def test_router_for_takes_the_enum_member_or_its_spelling():
    assert router_for(Router.ISTIO) is router_for("istio")


def test_unknown_router_is_a_clear_error():
    with pytest.raises(
        ValueError, match="unknown traffic router 'linkerd'; known: gatewayAPI, istio, nginx, none, traefik"
    ):
        router_for("linkerd")


def test_a_kind_registered_twice_must_be_the_same():
    from modelrollout.controller.routing import ROUTER_KINDS
    from modelrollout.kube.client import Kind, register_kinds

    (httproute,) = ROUTER_KINDS[Router.GATEWAY_API]
    register_kinds(httproute)  # the same declaration again is harmless
    with pytest.raises(ValueError, match=re.escape("gateway.networking.k8s.io/v1/HTTPRoute is already known")):
        register_kinds(Kind(httproute.group, httproute.version, "routes", httproute.kind))
