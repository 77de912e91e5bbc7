"""The API request tally: verbs and resources named as the apiserver names them, and kopf's own counted."""

from __future__ import annotations

import asyncio

import pytest
from kopf._cogs.clients import api

from modelrollout.controller import metrics
from modelrollout.kube.tally import KOPF, OPERATOR, RequestKey, RequestTally, count_kopf_requests, describe


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("GET", "/apis/apps/v1/namespaces/ns/deployments/web", ("get", "deployments")),
        ("GET", "/apis/apps/v1/namespaces/ns/deployments?labelSelector=a%3Db", ("list", "deployments")),
        ("GET", "https://10.0.0.1:6443/apis/apps/v1/deployments?watch=true", ("watch", "deployments")),
        ("GET", "/api/v1/namespaces/ns/pods?watch=1&resourceVersion=5", ("watch", "pods")),
        (
            "PATCH",
            "/apis/modelrollout.io/v1alpha1/namespaces/ns/modeldeployments/m/status",
            ("patch", "modeldeployments/status"),
        ),
        ("POST", "/apis/events.k8s.io/v1/namespaces/ns/events", ("create", "events")),
        ("DELETE", "/api/v1/namespaces/ns/services/m-canary", ("delete", "services")),
        ("DELETE", "/api/v1/namespaces/ns/pods", ("deletecollection", "pods")),
        ("PUT", "/apis/kopf.dev/v1/clusterkopfpeerings/default", ("update", "clusterkopfpeerings")),
        ("GET", "/api/v1/namespaces/ns", ("get", "namespaces")),
        ("GET", "/api/v1/namespaces", ("list", "namespaces")),
        ("GET", "/apis/apps/v1", ("get", "/apis/apps/v1")),
        ("GET", "/version", ("get", "/version")),
    ],
)
def test_requests_are_named_as_the_apiserver_names_them(method, url, expected):
    assert describe(method, url) == expected


def test_kopf_requests_are_counted_under_their_own_client(monkeypatch):
    sent: list[tuple[str, str]] = []

    async def kopf_request(method: str, url: str, **_: object) -> str:
        sent.append((method, url))
        return "response"

    monkeypatch.setattr(api, "request", kopf_request)
    tally = RequestTally()
    count_kopf_requests(tally)
    count_kopf_requests(tally)  # a second operator start in the same process wraps nothing twice
    answer = asyncio.run(
        api.request("GET", "/apis/modelrollout.io/v1alpha1/modeldeployments?watch=true", settings=None)
    )
    assert answer == "response" and sent == [("GET", "/apis/modelrollout.io/v1alpha1/modeldeployments?watch=true")]
    assert tally.counts() == {RequestKey(KOPF, "watch", "modeldeployments"): 1}


def test_the_metric_exports_every_client_verb_and_resource():
    tally = RequestTally()
    tally.count(OPERATOR, "GET", "/apis/modelrollout.io/v1alpha1/namespaces/ns/modeldeployments/m")
    tally.count(OPERATOR, "GET", "/apis/modelrollout.io/v1alpha1/namespaces/ns/modeldeployments/m")
    tally.count(KOPF, "GET", "/apis/apps/v1/deployments?watch=true")
    (family,) = metrics.ApiRequests(tally).collect()
    exported = {tuple(sample.labels.values()): sample.value for sample in family.samples}
    assert exported == {("operator", "get", "modeldeployments"): 2.0, ("kopf", "watch", "deployments"): 1.0}
