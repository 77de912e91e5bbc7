"""Golden tests of the routers' rendered objects: exactly what the operator writes."""

import re
from collections import Counter

import pytest

from modelrollout.core.cohorts import SessionAffinity
from modelrollout.core.enums import Router
from modelrollout.core.headerroutes import HeaderMatch, HeaderRoute, MatchKind
from modelrollout.core.rollout import Weights
from modelrollout.core.routers import TRAITS
from modelrollout.render.routers import ADAPTERS, RouteTarget, Routing, registry, router_for

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
    assert router_for("gatewayAPI").render(target(config), Routing(Weights(95, 5))) == [
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
    (route,) = router_for("gatewayAPI").render(target({"parentRefs": [{"name": "gw"}]}), Routing(Weights(100, 0, 40)))
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
    assert router_for("istio").render(target(config), Routing(Weights(75, 25))) == [
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
    stable, canary = router_for("nginx").render(target(config), Routing(Weights(50, 50)))
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
    assert router_for("traefik").render(target(config), Routing(Weights(95, 5))) == [
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
    split, mirroring, route = router_for("traefik").render(target({}), Routing(Weights(100, 0, mirror=30)))
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
        (o["apiVersion"], o["kind"], o["metadata"]["name"])
        for o in router.render(target(CONFIGS[name]), Routing(Weights()))
    ]
    assert rendered == [(kind.api_version, kind.kind, name) for kind, name in router.object_names("fraud")]
    assert {kind for kind, _ in router.object_names("fraud")} == set(router.kinds)


@pytest.mark.parametrize("name", list(Router))
def test_the_kube_client_addresses_every_routing_object_by_the_declared_kind(name):
    from modelrollout.controller.routing import ROUTER_KINDS
    from modelrollout.kube.client import kind_of

    router = router_for(name)
    for body, (declared, _) in zip(
        router.render(target(CONFIGS[name]), Routing(Weights())), router.object_names("fraud"), strict=True
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


# Header routes: one of each kind, rendered ahead of the weighted route, all to the canary.
EXACT = HeaderRoute("qa", (HeaderMatch("X-Model-QA", "yes"),))
PREFIX = HeaderRoute("team", (HeaderMatch("x-team", "fraud.", MatchKind.PREFIX),))
REGEX = HeaderRoute("client", (HeaderMatch("x-client", "^v[0-9]+$", MatchKind.REGEX),))
COOKIE = HeaderRoute("beta", (HeaderMatch("model", "new", cookie=True),))
BOTH = HeaderRoute("qa-beta", (HeaderMatch("x-model-qa", "yes"), HeaderMatch("model", "new", cookie=True)))
PREFIX_EXPRESSION = r"^fraud\..*$"
COOKIE_EXPRESSION = r"^(.*;\s*)?model=new(;.*)?$"


@pytest.mark.parametrize(
    ("match", "header", "exact", "expression"),
    [
        (HeaderMatch("X-Model-QA", "yes"), "X-Model-QA", True, r"^yes$"),
        (HeaderMatch("x-team", "fraud.", MatchKind.PREFIX), "x-team", False, PREFIX_EXPRESSION),
        (HeaderMatch("x-client", "^v[0-9]+$", MatchKind.REGEX), "x-client", False, "^v[0-9]+$"),
        (HeaderMatch("model", "new", cookie=True), "Cookie", False, COOKIE_EXPRESSION),
        (HeaderMatch("model", "a.b", MatchKind.PREFIX, cookie=True), "Cookie", False, r"^(.*;\s*)?model=a\.b(;.*)?$"),
    ],
)
def test_what_the_routers_read_from_a_match(match, header, exact, expression):
    assert (match.header, match.exact, match.regex()) == (header, exact, expression)


GATEWAY_CONFIG = {"parentRefs": [{"name": "public", "namespace": "gateways"}], "pathPrefix": "/score"}
CANARY_BACKEND = {"group": "", "kind": "Service", "name": "fraud-canary", "port": 80, "weight": 100}
WEIGHTED_RULE = {
    "matches": [{"path": {"type": "PathPrefix", "value": "/score"}}],
    "backendRefs": [
        {"group": "", "kind": "Service", "name": "fraud-stable", "port": 80, "weight": 90},
        {"group": "", "kind": "Service", "name": "fraud-canary", "port": 80, "weight": 10},
    ],
}


def gateway_header_rule(*headers: dict) -> dict:
    return {
        "matches": [{"path": {"type": "PathPrefix", "value": "/score"}, "headers": list(headers)}],
        "backendRefs": [CANARY_BACKEND],
    }


GATEWAY_HEADER_RULES = {
    "exact": (EXACT, gateway_header_rule({"type": "Exact", "name": "X-Model-QA", "value": "yes"})),
    "prefix": (
        PREFIX,
        gateway_header_rule({"type": "RegularExpression", "name": "x-team", "value": PREFIX_EXPRESSION}),
    ),
    "regex": (REGEX, gateway_header_rule({"type": "RegularExpression", "name": "x-client", "value": "^v[0-9]+$"})),
    "cookie": (
        COOKIE,
        gateway_header_rule({"type": "RegularExpression", "name": "Cookie", "value": COOKIE_EXPRESSION}),
    ),
    "two matches": (
        BOTH,
        gateway_header_rule(
            {"type": "Exact", "name": "x-model-qa", "value": "yes"},
            {"type": "RegularExpression", "name": "Cookie", "value": COOKIE_EXPRESSION},
        ),
    ),
}


@pytest.mark.parametrize("kind", list(GATEWAY_HEADER_RULES))
def test_gateway_api_header_route_is_a_rule_to_the_canary_after_the_weighted_rule(kind):
    route, rule = GATEWAY_HEADER_RULES[kind]
    assert router_for("gatewayAPI").render(target(GATEWAY_CONFIG), Routing(Weights(90, 10), (route,))) == [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": METADATA,
            "spec": {"parentRefs": [{"name": "public", "namespace": "gateways"}], "rules": [WEIGHTED_RULE, rule]},
        }
    ]


def test_gateway_api_header_rules_keep_their_order_and_are_never_mirrored():
    (route,) = router_for("gatewayAPI").render(target(GATEWAY_CONFIG), Routing(Weights(100, 0, 50), (EXACT, COOKIE)))
    weighted, exact, cookie = route["spec"]["rules"]
    assert exact == GATEWAY_HEADER_RULES["exact"][1] and cookie == GATEWAY_HEADER_RULES["cookie"][1]
    assert [filter_["type"] for filter_ in weighted["filters"]] == ["RequestMirror"]


ISTIO_CONFIG = {"hosts": ["fraud.example.com"]}
CANARY_DESTINATION = {"host": "fraud-canary.models.svc.cluster.local", "port": {"number": 80}}
PRIMARY = {
    "name": "primary",
    "route": [
        {"destination": {"host": "fraud-stable.models.svc.cluster.local", "port": {"number": 80}}, "weight": 90},
        {"destination": CANARY_DESTINATION, "weight": 10},
    ],
}


def istio_header_route(name: str, headers: dict) -> dict:
    return {
        "name": name,
        "match": [{"headers": headers}],
        "route": [{"destination": CANARY_DESTINATION, "weight": 100}],
    }


ISTIO_HEADER_ROUTES = {
    "exact": (EXACT, istio_header_route("header-qa", {"x-model-qa": {"exact": "yes"}})),
    "prefix": (PREFIX, istio_header_route("header-team", {"x-team": {"prefix": "fraud."}})),
    "regex": (REGEX, istio_header_route("header-client", {"x-client": {"regex": "^v[0-9]+$"}})),
    "cookie": (COOKIE, istio_header_route("header-beta", {"cookie": {"regex": COOKIE_EXPRESSION}})),
    "two matches": (
        BOTH,
        istio_header_route("header-qa-beta", {"x-model-qa": {"exact": "yes"}, "cookie": {"regex": COOKIE_EXPRESSION}}),
    ),
}


@pytest.mark.parametrize("kind", list(ISTIO_HEADER_ROUTES))
def test_istio_header_route_is_an_http_route_to_the_canary_before_primary(kind):
    route, http = ISTIO_HEADER_ROUTES[kind]
    assert router_for("istio").render(target(ISTIO_CONFIG), Routing(Weights(90, 10), (route,))) == [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": METADATA,
            "spec": {"hosts": ["fraud.example.com"], "http": [http, PRIMARY]},
        }
    ]


def test_istio_header_routes_keep_their_order_and_are_never_mirrored():
    (service,) = router_for("istio").render(target(ISTIO_CONFIG), Routing(Weights(100, 0, 50), (COOKIE, EXACT)))
    cookie, exact, primary = service["spec"]["http"]
    assert cookie == ISTIO_HEADER_ROUTES["cookie"][1] and exact == ISTIO_HEADER_ROUTES["exact"][1]
    assert primary["name"] == "primary" and primary["mirror"] == CANARY_DESTINATION


NGINX_CONFIG = {"host": "fraud.example.com"}


def nginx_ingress(name: str, service: str, annotations: dict | None = None) -> dict:
    metadata = {**METADATA, "name": name, **({"annotations": annotations} if annotations else {})}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": "fraud.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": service, "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
        },
    }


NGINX_BY_HEADER = {
    "exact": (
        EXACT,
        {
            "nginx.ingress.kubernetes.io/canary-by-header": "X-Model-QA",
            "nginx.ingress.kubernetes.io/canary-by-header-value": "yes",
        },
    ),
    "prefix": (
        PREFIX,
        {
            "nginx.ingress.kubernetes.io/canary-by-header": "x-team",
            "nginx.ingress.kubernetes.io/canary-by-header-pattern": PREFIX_EXPRESSION,
        },
    ),
    "regex": (
        REGEX,
        {
            "nginx.ingress.kubernetes.io/canary-by-header": "x-client",
            "nginx.ingress.kubernetes.io/canary-by-header-pattern": "^v[0-9]+$",
        },
    ),
    "cookie": (
        COOKIE,
        {
            "nginx.ingress.kubernetes.io/canary-by-header": "Cookie",
            "nginx.ingress.kubernetes.io/canary-by-header-pattern": COOKIE_EXPRESSION,
        },
    ),
}


@pytest.mark.parametrize("kind", list(NGINX_BY_HEADER))
def test_nginx_header_route_is_a_canary_by_header_annotation(kind):
    route, by_header = NGINX_BY_HEADER[kind]
    assert router_for("nginx").render(target(NGINX_CONFIG), Routing(Weights(90, 10), (route,))) == [
        nginx_ingress("fraud", "fraud-stable"),
        nginx_ingress(
            "fraud-canary",
            "fraud-canary",
            {
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "10",
                **by_header,
            },
        ),
    ]


def test_nginx_renders_only_the_first_routes_first_match():
    _, canary = router_for("nginx").render(target(NGINX_CONFIG), Routing(Weights(90, 10), (BOTH, EXACT, PREFIX)))
    assert canary["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/canary": "true",
        "nginx.ingress.kubernetes.io/canary-weight": "10",
        "nginx.ingress.kubernetes.io/canary-by-header": "x-model-qa",
        "nginx.ingress.kubernetes.io/canary-by-header-value": "yes",
    }


TRAEFIK_CONFIG = {"entryPoints": ["web"], "match": "Host(`fraud.example.com`) && PathPrefix(`/v2`)"}
TRAEFIK_MAIN_ROUTE = {
    "match": "Host(`fraud.example.com`) && PathPrefix(`/v2`)",
    "kind": "Rule",
    "services": [{"name": "fraud", "kind": "TraefikService"}],
}


def traefik_header_route(conditions: str) -> dict:
    return {
        "match": f"(Host(`fraud.example.com`) && PathPrefix(`/v2`)) && {conditions}",
        "kind": "Rule",
        "services": [{"name": "fraud-canary", "kind": "Service", "port": 80}],
    }


TRAEFIK_HEADER_ROUTES = {
    "exact": (EXACT, traefik_header_route("Header(`X-Model-QA`, `yes`)")),
    "prefix": (PREFIX, traefik_header_route(r"HeaderRegexp(`x-team`, `^fraud\..*$`)")),
    "regex": (REGEX, traefik_header_route("HeaderRegexp(`x-client`, `^v[0-9]+$`)")),
    "cookie": (COOKIE, traefik_header_route(r"HeaderRegexp(`Cookie`, `^(.*;\s*)?model=new(;.*)?$`)")),
    "two matches": (
        BOTH,
        traefik_header_route(r"Header(`x-model-qa`, `yes`) && HeaderRegexp(`Cookie`, `^(.*;\s*)?model=new(;.*)?$`)"),
    ),
}


@pytest.mark.parametrize("kind", list(TRAEFIK_HEADER_ROUTES))
def test_traefik_header_route_is_a_longer_route_straight_to_the_canary_service(kind):
    route, expected = TRAEFIK_HEADER_ROUTES[kind]
    split, mirroring, ingressroute = router_for("traefik").render(
        target(TRAEFIK_CONFIG), Routing(Weights(90, 10), (route,))
    )
    assert (split, mirroring) == tuple(
        router_for("traefik").render(target(TRAEFIK_CONFIG), Routing(Weights(90, 10)))[:2]
    )
    assert ingressroute == {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": METADATA,
        "spec": {"entryPoints": ["web"], "routes": [expected, TRAEFIK_MAIN_ROUTE]},
    }
    # No priority is set: Traefik tries the longer rule first.
    assert len(expected["match"]) > len(TRAEFIK_MAIN_ROUTE["match"]) and "priority" not in expected


def test_traefik_header_routes_keep_their_order_and_are_never_mirrored():
    _, mirroring, ingressroute = router_for("traefik").render(
        target(TRAEFIK_CONFIG), Routing(Weights(100, 0, 50), (REGEX, EXACT))
    )
    assert ingressroute["spec"]["routes"] == [
        TRAEFIK_HEADER_ROUTES["regex"][1],
        TRAEFIK_HEADER_ROUTES["exact"][1],
        TRAEFIK_MAIN_ROUTE,
    ]
    assert mirroring["spec"]["mirroring"]["mirrors"] == [
        {"name": "fraud-canary", "kind": "Service", "port": 80, "percent": 50}
    ]


def test_traefik_quotes_a_value_holding_a_backtick_as_a_go_string():
    route = HeaderRoute("odd", (HeaderMatch("x-odd", 'a`b"c'),))
    _, _, ingressroute = router_for("traefik").render(target({}), Routing(Weights(), (route,)))
    assert ingressroute["spec"]["routes"][0]["match"] == '(PathPrefix(`/`)) && Header(`x-odd`, "a`b\\"c")'


def test_without_a_router_header_routes_render_nothing():
    assert router_for("none").render(target({}), Routing(Weights(90, 10), (EXACT, BOTH))) == []


@pytest.mark.parametrize("name", list(Router))
def test_header_routes_add_no_object(name):
    router = router_for(name)
    routes = (EXACT,) if name == Router.NGINX else (EXACT, PREFIX, REGEX, COOKIE, BOTH)
    rendered = [
        (o["kind"], o["metadata"]["name"]) for o in router.render(target(CONFIGS[name]), Routing(Weights(), routes))
    ]
    assert rendered == [(kind.kind, name) for kind, name in router.object_names("fraud")]


# Sticky cohorts: a session affinity, rendered only by the data planes that can keep a user on one track.
SESSION = SessionAffinity("model-cohort")
LASTING = SessionAffinity("model-cohort", max_age=86400)
TRAEFIK_WEIGHTED_SERVICES = [
    {"name": "fraud-stable", "kind": "Service", "port": 80, "weight": 90},
    {"name": "fraud-canary", "kind": "Service", "port": 80, "weight": 10},
]


@pytest.mark.parametrize(
    ("affinity", "cookie"),
    [
        (SESSION, {"name": "model-cohort", "httpOnly": True, "sameSite": "lax"}),
        (LASTING, {"name": "model-cohort", "httpOnly": True, "sameSite": "lax", "maxAge": 86400}),
    ],
    ids=["session-cookie", "max-age"],
)
def test_traefik_affinity_is_a_sticky_cookie_on_the_weighted_split(affinity, cookie):
    plain = router_for("traefik").render(target(TRAEFIK_CONFIG), Routing(Weights(90, 10), (EXACT,)))
    split, mirroring, ingressroute = router_for("traefik").render(
        target(TRAEFIK_CONFIG), Routing(Weights(90, 10), (EXACT,), affinity)
    )
    assert split == traefik_service(
        "fraud-split", {"weighted": {"services": TRAEFIK_WEIGHTED_SERVICES, "sticky": {"cookie": cookie}}}
    )
    assert [mirroring, ingressroute] == plain[1:]


@pytest.mark.parametrize(
    ("affinity", "sticky"),
    [
        (
            SESSION,
            {
                "nginx.ingress.kubernetes.io/affinity": "cookie",
                "nginx.ingress.kubernetes.io/session-cookie-name": "model-cohort",
            },
        ),
        (
            LASTING,
            {
                "nginx.ingress.kubernetes.io/affinity": "cookie",
                "nginx.ingress.kubernetes.io/session-cookie-name": "model-cohort",
                "nginx.ingress.kubernetes.io/session-cookie-max-age": "86400",
            },
        ),
    ],
    ids=["session-cookie", "max-age"],
)
def test_nginx_affinity_is_cookie_affinity_on_both_ingresses_sticky_for_the_canary(affinity, sticky):
    assert router_for("nginx").render(target(NGINX_CONFIG), Routing(Weights(90, 10), (EXACT,), affinity)) == [
        nginx_ingress("fraud", "fraud-stable", sticky),
        nginx_ingress(
            "fraud-canary",
            "fraud-canary",
            {
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "10",
                "nginx.ingress.kubernetes.io/canary-by-header": "X-Model-QA",
                "nginx.ingress.kubernetes.io/canary-by-header-value": "yes",
                **sticky,
                "nginx.ingress.kubernetes.io/affinity-canary-behavior": "sticky",
            },
        ),
    ]


@pytest.mark.parametrize("name", [Router.GATEWAY_API, Router.ISTIO, Router.NONE])
@pytest.mark.parametrize("affinity", [SESSION, LASTING], ids=["session-cookie", "max-age"])
def test_routers_that_cannot_keep_a_cohort_ignore_the_affinity(name, affinity):
    router = router_for(name)
    for weights, routes in ((Weights(90, 10), ()), (Weights(100, 0, 50), (EXACT, COOKIE))):
        assert router.render(target(CONFIGS[name]), Routing(weights, routes, affinity)) == router.render(
            target(CONFIGS[name]), Routing(weights, routes)
        )


@pytest.mark.parametrize("name", list(Router))
def test_an_affinity_adds_no_object(name):
    router = router_for(name)
    rendered = router.render(target(CONFIGS[name]), Routing(Weights(90, 10), (), LASTING))
    assert [(o["kind"], o["metadata"]["name"]) for o in rendered] == [
        (kind.kind, name) for kind, name in router.object_names("fraud")
    ]
