"""A real Traefik routes real requests to servers on kwok's pod IPs: weighted HTTPRoutes and Traefik's own
weighted and mirroring TraefikServices split and copy traffic as the routers assume.

These run inside the private network (`modelrollout private-network -- pytest ...`), where pod IPs are local.
"""

from __future__ import annotations

import collections
import contextlib
import math
import re
import urllib.request
from collections.abc import Iterator

from tests.integration.conftest import get_json, wait_for
from tests.integration.helpers import PodServers, http_get, kubectl_apply, pod_servers

POD_PORT = 8080
SERVICE_PORT = 80
REQUESTS = 400
SIGMAS = 4.0
PART = "dataplane.modelrollout.io/part"
METRIC_LINE = re.compile(r"^traefik_service_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.MULTILINE)


def backend(name: str, replicas: int) -> list[dict]:
    """A Deployment of kwok pods and its Service; the test serves on the pods' IPs itself."""
    labels = {"app": name, PART: "backend"}
    container = {"name": "app", "image": "example.invalid/app", "ports": [{"containerPort": POD_PORT}]}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "selector": {"app": name},
                "ports": [{"name": "web", "port": SERVICE_PORT, "targetPort": POD_PORT}],
            },
        },
    ]


@contextlib.contextmanager
def serving(control_plane, namespace: str, replicas: dict[str, int]) -> Iterator[PodServers]:
    """Deploy the backends, serve on every pod's IP, and wait until the EndpointSlices list every pod."""
    kubectl_apply(control_plane, namespace, *[doc for name, count in replicas.items() for doc in backend(name, count)])

    def endpoints_ready() -> bool:
        for name, count in replicas.items():
            slices = get_json(
                control_plane, "endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={name}"
            )["items"]
            ready = [e for s in slices for e in s.get("endpoints") or [] if e.get("conditions", {}).get("ready")]
            if len(ready) != count:
                return False
        return True

    with pod_servers(control_plane, namespace, f"{PART}=backend", sum(replicas.values()), POD_PORT) as servers:
        wait_for(endpoints_ready, what=f"EndpointSlices of {sorted(replicas)} listing every Ready pod")
        yield servers


def deployment_of(pod: str) -> str:
    return pod.rsplit("-", 2)[0]  # <deployment>-<replicaset hash>-<suffix>


def within_binomial(observed: int, trials: int, share: float, sigmas: float = SIGMAS) -> bool:
    """True when `observed` of `trials` is within `sigmas` standard deviations of a `share` split."""
    return abs(observed - trials * share) <= sigmas * math.sqrt(trials * share * (1 - share))


def warm_up(url: str) -> int:
    """Poll until Traefik has the route and answers 200; returns how many requests reached a backend."""
    answered = collections.Counter()

    def live() -> bool:
        status, _ = http_get(url)
        answered[status] += 1
        return status == 200

    wait_for(live, timeout=60, what=f"Traefik to route {url}")
    return answered[200]


def send(url: str, count: int) -> collections.Counter[str]:
    """Send `count` GETs one after another; the answering pod's name for each (or the error status)."""
    answers: collections.Counter[str] = collections.Counter()
    for _ in range(count):
        status, body = http_get(url)
        answers[body if status == 200 else f"HTTP {status}"] += 1
    return answers


def by_deployment(answers: collections.Counter[str]) -> collections.Counter[str]:
    totals: collections.Counter[str] = collections.Counter()
    for pod, count in answers.items():
        totals[pod if pod.startswith("HTTP ") else deployment_of(pod)] += count
    return totals


def service_requests(metrics_address: str) -> dict[str, float]:
    """traefik_service_requests_total summed over code, method and protocol, by service label."""
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10) as response:
        text = response.read().decode()
    totals: dict[str, float] = collections.defaultdict(float)
    for match in METRIC_LINE.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        totals[labels.get("service", "")] += float(match["value"])
    return totals


def gateway_label(namespace: str, service: str) -> str:
    """The `service` label of an HTTPRoute backendRef; `http` is literal in v3.6, not the port's name."""
    return f"{namespace}-{service}-http-{SERVICE_PORT}@kubernetesgateway"


def crd_label(namespace: str, service: str) -> str:
    """The `service` label of a Service inside a TraefikService (the weighted and mirroring kinds have none)."""
    return f"{namespace}-{service}-{SERVICE_PORT}@kubernetescrd"


def test_gateway_class_declares_no_request_mirror(traefik) -> None:
    """The operator refuses HTTPRoute shadows on classes without HTTPRouteRequestMirror: Traefik is one."""
    status = traefik.gateway_class_status()
    accepted = [c for c in status.get("conditions", []) if c["type"] == "Accepted"]
    assert accepted and accepted[0]["status"] == "True", status
    features = [feature["name"] for feature in status.get("supportedFeatures", [])]
    assert "HTTPRoute" in features, features
    assert "HTTPRouteRequestMirror" not in features, features


def test_httproute_weights_split_real_requests(control_plane, namespace, traefik) -> None:
    replicas = {"stable": 2, "canary": 1}
    with serving(control_plane, namespace, replicas):
        path = f"/{namespace}/split"
        route = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "split"},
            "spec": {
                "parentRefs": [traefik.parent_ref()],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                        "backendRefs": [
                            {"name": "stable", "port": SERVICE_PORT, "weight": 80},
                            {"name": "canary", "port": SERVICE_PORT, "weight": 20},
                        ],
                    }
                ],
            },
        }
        kubectl_apply(control_plane, namespace, route)

        def route_resolved() -> bool:
            parents = (get_json(control_plane, "httproute", "split", "-n", namespace).get("status") or {}).get(
                "parents", []
            )
            conditions = {c["type"]: c["status"] for p in parents for c in p.get("conditions", [])}
            return conditions.get("Accepted") == "True" and conditions.get("ResolvedRefs") == "True"

        wait_for(route_resolved, what="HTTPRoute split Accepted and ResolvedRefs by Traefik")
        url = traefik.web_url + path
        warm_up(url)
        metrics_before = service_requests(traefik.metrics_address)
        answers = send(url, REQUESTS)

    totals = by_deployment(answers)
    assert set(totals) == {"stable", "canary"}, answers
    assert within_binomial(totals["canary"], REQUESTS, 0.2), totals
    # Both stable pods served: Traefik balances over the EndpointSlice's real pod addresses.
    assert len([pod for pod in answers if deployment_of(pod) == "stable"]) == 2, answers
    # The metrics a canary analysis would query count exactly what the clients saw, per backend Service.
    metrics_after = service_requests(traefik.metrics_address)
    for name in replicas:
        label = gateway_label(namespace, name)
        assert metrics_after[label] - metrics_before.get(label, 0) == totals[name], sorted(metrics_after)


def test_traefikservices_split_and_mirror(control_plane, namespace, traefik) -> None:
    replicas = {"stable": 2, "canary": 1, "shadow": 1}
    with serving(control_plane, namespace, replicas) as servers:
        path = f"/{namespace}/mirror"

        def service(name: str, **extra) -> dict:
            return {"name": name, "kind": "Service", "port": SERVICE_PORT, **extra}

        split = {"weighted": {"services": [service("stable", weight=80), service("canary", weight=20)]}}
        mirroring = {
            "mirroring": {"name": "split", "kind": "TraefikService", "mirrors": [service("shadow", percent=100)]}
        }
        entry = {
            "entryPoints": ["web"],
            "routes": [
                {
                    "match": f"PathPrefix(`{path}`)",
                    "kind": "Rule",
                    "services": [{"name": "mirror", "kind": "TraefikService"}],
                }
            ],
        }
        kubectl_apply(
            control_plane,
            namespace,
            {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "TraefikService",
                "metadata": {"name": "split"},
                "spec": split,
            },
            {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "TraefikService",
                "metadata": {"name": "mirror"},
                "spec": mirroring,
            },
            {"apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute", "metadata": {"name": "entry"}, "spec": entry},
        )
        url = traefik.web_url + path
        warmed = warm_up(url)

        def shadow_hits() -> int:
            return sum(count for pod, count in servers.hits().items() if deployment_of(pod) == "shadow")

        # Mirrored copies are sent asynchronously: wait for the warm-up's before counting.
        wait_for(lambda: shadow_hits() == warmed, timeout=30, what=f"{warmed} mirrored warm-up requests")
        wait_for(
            lambda: service_requests(traefik.metrics_address).get(crd_label(namespace, "shadow")) == warmed,
            timeout=30,
            what="Traefik's metrics to count the mirrored warm-up requests",
        )
        metrics_before = service_requests(traefik.metrics_address)
        answers = send(url, REQUESTS)
        wait_for(
            lambda: shadow_hits() >= warmed + REQUESTS,
            timeout=30,
            what=f"the shadow to receive a copy of each of {REQUESTS} requests",
        )
        mirrored = shadow_hits() - warmed

    totals = by_deployment(answers)
    # Every client answer came from the main (weighted) service; the mirror's answers are discarded.
    assert set(totals) == {"stable", "canary"}, answers
    assert within_binomial(totals["canary"], REQUESTS, 0.2), totals
    assert mirrored == REQUESTS, mirrored

    # Traefik counts the mirror's requests too, under the shadow Service: a shadow analysis can use them.
    def delta(name: str) -> float:
        label = crd_label(namespace, name)
        return service_requests(traefik.metrics_address)[label] - metrics_before.get(label, 0)

    wait_for(lambda: delta("shadow") == REQUESTS, timeout=30, what=f"{REQUESTS} mirrored requests in Traefik's metrics")
    assert (delta("stable"), delta("canary")) == (totals["stable"], totals["canary"])
