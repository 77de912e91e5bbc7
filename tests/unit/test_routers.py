"""Golden tests of the routers' rendered objects: exactly what the operator writes."""

import pytest

from modelrollout.core.rollout import Weights
from modelrollout.render.routers import RouteTarget, registry, router_for

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


@pytest.mark.parametrize("name", sorted(registry()))
def test_object_names_match_what_render_writes(name):
    configs = {
        "gatewayAPI": {"parentRefs": [{"name": "gw"}]},
        "istio": {"hosts": ["h"]},
        "nginx": {"host": "h"},
        "none": {},
    }
    router = router_for(name)
    rendered = [
        (o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in router.render(target(configs[name]), Weights())
    ]
    assert rendered == router.object_names("fraud")


def test_unknown_router_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown traffic router 'linkerd'; known: gatewayAPI, istio, nginx, none"):
        router_for("linkerd")
