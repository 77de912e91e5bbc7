"""Bad and hostile input: each is rejected at apply time with a message naming the field, both as a new
ModelDeployment (nothing is created) and as an update to one that serves (nothing changes: same generation,
same spec, same children). This table is the one home of the invalid-ModelDeployment cases."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.integration.conftest import get_json, wait_for
from tests.integration.helpers import apply, healthy, md, sample, template

Mutation = Callable[[dict], None]


def steps(*items: dict) -> Mutation:
    return lambda spec: spec["strategy"]["canary"].update(steps=list(items))


def routing(value: dict) -> Mutation:
    return lambda spec: spec.update(trafficRouting=value)


def shadow_without_any_router(spec: dict) -> None:
    spec.pop("trafficRouting", None)
    spec["strategy"] = {"shadow": {"duration": "10m"}}


def header_route(*match: dict, name: str = "qa") -> dict:
    return {"setHeaderRoute": {"name": name, "match": list(match)}}


QA_HEADER = {"headerName": "x-qa", "headerValue": {"exact": "yes"}}


def header_route_without_any_router(spec: dict) -> None:
    spec.pop("trafficRouting", None)
    spec["strategy"]["canary"]["steps"] = [header_route(QA_HEADER), {"setWeight": 50}]


def on_nginx(*items: dict) -> Mutation:
    return lambda spec: spec.update(
        trafficRouting={"nginx": {"host": "fraud.example.com"}},
        strategy={**spec["strategy"], "canary": {"steps": list(items)}},
    )


def canary_scale_without_any_router(spec: dict) -> None:
    spec.pop("trafficRouting", None)
    spec["strategy"]["canary"]["steps"] = [{"setCanaryScale": {"replicas": 2}}, {"setWeight": 50}]


def dynamic_stable_scale_without_any_router(spec: dict) -> None:
    spec.pop("trafficRouting", None)
    spec["strategy"]["canary"]["dynamicStableScale"] = True


MODEL_DEPLOYMENTS: list[tuple[str, Mutation, str]] = [
    ("canary-and-blue-green", lambda s: s["strategy"].update(blueGreen={}), "set exactly one of canary or blueGreen"),
    ("no-strategy", lambda s: s.update(strategy={}), "set one of canary or blueGreen"),
    ("weight-over-100", steps({"setWeight": 150}), "spec.strategy.canary.steps[0].setWeight: Invalid value: 150"),
    ("negative-weight", steps({"setWeight": -1}), "setWeight in body should be greater than or equal to 0"),
    (
        "weights-decrease",
        steps({"setWeight": 50}, {"setWeight": 25}),
        "setWeight and experiment weights must not decrease",
    ),
    (
        "two-kinds-in-a-step",
        steps({"setWeight": 5, "pause": {}}),
        "each step sets exactly one of setWeight, pause, analysis, setCanaryScale, setHeaderRoute or experiment",
    ),
    (
        "huge-step-list",
        steps(*[{"setWeight": 1}] * 65),
        "spec.strategy.canary.steps: Too many: 65: must have at most 64",
    ),
    (
        "experiment-below-the-weight-reached",
        steps({"setWeight": 50}, {"experiment": {"weight": 20, "duration": "10m"}}),
        "setWeight and experiment weights must not decrease",
    ),
    (
        "experiment-without-duration",
        steps({"experiment": {"weight": 50}}),
        "spec.strategy.canary.steps[0].experiment.duration: Required value",
    ),
    ("duration-in-words", steps({"pause": {"duration": "10 minutes"}}), "spec.strategy.canary.steps[0].pause.duration"),
    ("negative-duration", steps({"pause": {"duration": "-5s"}}), 'pause.duration: Invalid value: "-5s"'),
    ("zero-duration", steps({"pause": {"duration": "0s"}}), "must be a positive duration"),
    (
        "analysis-without-templates",
        steps({"analysis": {"templates": []}}),
        "analysis.templates in body should have at least 1 items",
    ),
    ("negative-replicas", lambda s: s.update(replicas=-1), "spec.replicas: Invalid value: -1"),
    (
        "model-name-not-a-label",
        lambda s: s["model"].update(name="Fraud Scorer"),
        'spec.model.name: Invalid value: "Fraud',
    ),
    ("model-without-version", lambda s: s["model"].pop("version"), "spec.model.version: Required value"),
    (
        "container-without-image",
        lambda s: s["template"]["spec"]["containers"][0].pop("image"),
        "spec.template.spec.containers[0].image: Required value",
    ),
    ("no-containers", lambda s: s["template"]["spec"].update(containers=[]), "spec.template.spec.containers"),
    (
        "reserved-pod-label",
        lambda s: s["template"].update(metadata={"labels": {"modelrollout.io/track": "x"}}),
        "labels with the prefix modelrollout.io/ are set by the operator",
    ),
    ("port-out-of-range", lambda s: s.update(service={"port": 70000}), "spec.service.port: Invalid value: 70000"),
    ("unknown-router", routing({"linkerd": {}}), 'unknown field "spec.trafficRouting.linkerd"'),
    (
        "two-routers",
        routing({"istio": {"hosts": ["a"]}, "nginx": {"host": "a"}}),
        "set at most one of gatewayAPI, istio, nginx and traefik",
    ),
    (
        "gateway-without-parents",
        routing({"gatewayAPI": {"hostnames": ["a"]}}),
        "spec.trafficRouting.gatewayAPI.parentRefs: Required value",
    ),
    ("istio-without-hosts", routing({"istio": {"hosts": []}}), "spec.trafficRouting.istio.hosts"),
    ("nginx-relative-path", routing({"nginx": {"host": "a", "path": "score"}}), "spec.trafficRouting.nginx.path"),
    ("traefik-empty-match", routing({"traefik": {"match": ""}}), "spec.trafficRouting.traefik.match"),
    (
        "shadow-without-mirroring-router",
        lambda s: s.update(trafficRouting={"nginx": {"host": "a"}}, strategy={**s["strategy"], "shadow": {}}),
        "strategy.shadow needs trafficRouting.gatewayAPI, trafficRouting.istio or trafficRouting.traefik",
    ),
    (
        "shadow-without-any-router",
        shadow_without_any_router,
        "strategy.shadow needs trafficRouting.gatewayAPI, trafficRouting.istio or trafficRouting.traefik",
    ),
    (
        "mirror-zero-percent",
        lambda s: s.update(trafficRouting={"istio": {"hosts": ["a"]}}, strategy={"shadow": {"mirrorPercent": 0}}),
        "spec.strategy.shadow.mirrorPercent: Invalid value: 0",
    ),
    (
        "negative-blue-green-delay",
        lambda s: s.update(strategy={"blueGreen": {"scaleDownDelaySeconds": -1}}),
        "spec.strategy.blueGreen.scaleDownDelaySeconds: Invalid value: -1",
    ),
    (
        "alertname-with-spaces",
        lambda s: s.update(rollbackOn={"alerts": [{"alertname": "bad name!"}]}),
        'spec.rollbackOn.alerts[0].alertname: Invalid value: "bad name!"',
    ),
    (
        "alert-label-names-an-unknown-argument",
        lambda s: s.update(rollbackOn={"alerts": [{"alertname": "A", "labels": {"revision": "{{args.version}}"}}]}),
        "spec.rollbackOn.alerts[0].labels: Invalid value: a label value can name only {{args.namespace}}",
    ),
    (
        "alert-poll-too-fast",
        lambda s: s.update(rollbackOn={"pollInterval": "99ms", "alerts": [{"alertname": "A"}]}),
        "must be at least 100ms",
    ),
    (
        "notification-url-not-http",
        lambda s: s.update(notifications={"receivers": [{"name": "chat", "url": "ftp://chat.example/hook"}]}),
        "spec.notifications.receivers[0].url in body should match '^https?://'",
    ),
    (
        "notification-url-twice",
        lambda s: s.update(
            notifications={
                "receivers": [{"name": "chat", "url": "https://chat/h", "urlSecretRef": {"name": "s", "key": "url"}}]
            }
        ),
        "set exactly one of url and urlSecretRef",
    ),
    (
        "notification-without-url",
        lambda s: s.update(notifications={"receivers": [{"name": "chat", "format": "slack"}]}),
        "set exactly one of url and urlSecretRef",
    ),
    (
        "unknown-notification-kind",
        lambda s: s.update(notifications={"receivers": [{"name": "c", "url": "https://c/h", "kinds": ["Started"]}]}),
        'spec.notifications.receivers[0].kinds[0]: Unsupported value: "Started"',
    ),
    (
        "hook-without-target",
        lambda s: s.update(hooks=[{"name": "load-test", "at": ["preRollout"]}]),
        "spec.hooks[0]: Invalid value: a hook needs exactly one target: set webhook.url or job.spec",
    ),
    (
        "hook-with-two-targets",
        lambda s: s.update(
            hooks=[{"name": "h", "at": ["preRollout"], "webhook": {"url": "http://h/"}, "job": {"spec": {}}}]
        ),
        "a hook needs exactly one target: set webhook.url or job.spec",
    ),
    (
        "hook-url-not-http",
        lambda s: s.update(hooks=[{"name": "h", "at": ["preRollout"], "webhook": {"url": "file:///etc/passwd"}}]),
        "spec.hooks[0].webhook.url in body should match '^https?://'",
    ),
    (
        "hook-unknown-point",
        lambda s: s.update(hooks=[{"name": "h", "at": ["beforeLunch"], "webhook": {"url": "http://h/"}}]),
        'spec.hooks[0].at[0]: Unsupported value: "beforeLunch"',
    ),
    (
        "hooks-of-one-name",
        lambda s: s.update(hooks=[{"name": "h", "at": ["onEvent"], "webhook": {"url": "http://h/"}}] * 2),
        'spec.hooks[1]: Duplicate value: {"name":"h"}',
    ),
    (
        "canary-scale-without-router",
        canary_scale_without_any_router,
        "setCanaryScale needs a trafficRouting: without a router the canary's pods are its traffic",
    ),
    (
        "canary-scale-two-ways",
        steps({"setCanaryScale": {"replicas": 2, "weight": 20}}),
        "set exactly one of replicas, weight or matchTrafficWeight",
    ),
    (
        "header-route-without-router",
        header_route_without_any_router,
        "setHeaderRoute needs a trafficRouting: without a router nothing can send a request to the canary",
    ),
    (
        "header-route-match-header-and-cookie-in-one-entry",
        steps(header_route({**QA_HEADER, "cookie": {"name": "m", "value": "b"}})),
        "each match entry sets exactly one of headerName (with headerValue) or cookie",
    ),
    (
        "header-route-value-two-ways",
        steps(header_route({"headerName": "x-qa", "headerValue": {"exact": "a", "prefix": "b"}})),
        "set exactly one of exact, prefix or regex",
    ),
    (
        "header-route-header-name-without-value",
        steps(header_route({"headerName": "x-qa"})),
        "headerName and headerValue go together",
    ),
    (
        "header-route-one-header-twice",
        steps(header_route(QA_HEADER, {"headerName": "X-QA", "headerValue": {"prefix": "y"}})),
        "a header (and the Cookie header, which every cookie entry reads) may appear once in a route's match",
    ),
    (
        "header-route-two-cookies",
        steps(header_route({"cookie": {"name": "a", "value": "1"}}, {"cookie": {"name": "b", "value": "2"}})),
        "a header (and the Cookie header, which every cookie entry reads) may appear once in a route's match",
    ),
    (
        "header-route-name-not-a-label",
        steps({"setHeaderRoute": {"name": "QA Team", "match": [QA_HEADER]}}),
        "spec.strategy.canary.steps[0].setHeaderRoute.name",
    ),
    (
        "header-route-backtick",
        steps(header_route({"headerName": "x-qa", "headerValue": {"exact": "a`b"}})),
        "spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerValue.exact",
    ),
    (
        "header-route-empty-exact",
        steps(header_route({"headerName": "x-qa", "headerValue": {"exact": ""}})),
        "spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerValue.exact",
    ),
    (
        "header-routes-beyond-an-httproute",
        steps(*[header_route(QA_HEADER, name=f"r{i}") for i in range(16)]),
        "at most 15 setHeaderRoute steps: an HTTPRoute holds 16 rules",
    ),
    (
        "nginx-header-route-two-matches",
        on_nginx(header_route(QA_HEADER, {"cookie": {"name": "m", "value": "b"}})),
        "trafficRouting.nginx routes by one header or cookie only",
    ),
    (
        "nginx-two-header-routes",
        on_nginx(header_route(QA_HEADER), header_route(QA_HEADER, name="beta")),
        "trafficRouting.nginx carries one header route",
    ),
    (
        "sticky-cohorts-on-gateway-api",
        lambda s: s["strategy"]["canary"].update(sessionAffinity={"cookieName": "model-cohort"}),
        "strategy.canary.sessionAffinity needs trafficRouting.traefik or trafficRouting.nginx: Gateway API keeps",
    ),
    (
        "sticky-cohorts-on-istio",
        lambda s: s.update(
            trafficRouting={"istio": {"hosts": ["fraud.example.com"]}},
            strategy={"canary": {**s["strategy"]["canary"], "sessionAffinity": {"cookieName": "c"}}},
        ),
        "Istio picks a weighted route per request",
    ),
    (
        "sticky-cookie-name-with-a-space",
        lambda s: s.update(
            trafficRouting={"traefik": {}},
            strategy={"canary": {**s["strategy"]["canary"], "sessionAffinity": {"cookieName": "model cohort"}}},
        ),
        "spec.strategy.canary.sessionAffinity.cookieName",
    ),
    (
        "dynamic-stable-scale-without-any-router",
        dynamic_stable_scale_without_any_router,
        "strategy.canary.dynamicStableScale needs a trafficRouting: without a router the ratio of pods is the traffic",
    ),
    ("unknown-automation", lambda s: s.update(automation="yolo"), 'spec.automation: Unsupported value: "yolo"'),
    ("zero-progress-deadline", lambda s: s.update(progressDeadlineSeconds=0), "spec.progressDeadlineSeconds"),
    ("history-over-100", lambda s: s.update(revisionHistoryLimit=101), "spec.revisionHistoryLimit: Invalid value: 101"),
    (
        "template-from-another-namespace",
        steps({"setWeight": 10}, {"analysis": {"templates": [{"name": "other-team/error-rate"}]}}),
        "must be a template's name, not a path: templates are found in the ModelDeployment's own namespace",
    ),
    (
        "background-template-path",
        lambda s: s.update(analysis={"templates": [{"name": "../../secrets/x"}]}),
        "spec.analysis.templates[0].name: Invalid value",
    ),
    (
        "gateway-namespace-not-a-namespace-name",
        routing({"gatewayAPI": {"parentRefs": [{"name": "public", "namespace": "Other_Team"}]}}),
        'spec.trafficRouting.gatewayAPI.parentRefs[0].namespace: Invalid value: "Other_Team"',
    ),
    (
        "istio-gateway-not-namespace-slash-name",
        routing({"istio": {"hosts": ["a"], "gateways": ["a/b/c"]}}),
        'spec.trafficRouting.istio.gateways[0]: Invalid value: "a/b/c"',
    ),
]


@pytest.fixture(scope="module")
def serving(control_plane, operator) -> Iterator[tuple[str, dict]]:
    """One ModelDeployment that serves, shared by the table; each case must leave it exactly as it was."""
    namespace = f"bad-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace)
    body = sample(trafficRouting={"gatewayAPI": {"parentRefs": [{"name": "public"}]}})
    assert apply(control_plane, namespace, body).returncode == 0
    wait_for(lambda: healthy(control_plane, namespace), what="a serving ModelDeployment")
    yield namespace, body
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


def snapshot(control_plane, namespace: str) -> tuple:
    body = md(control_plane, namespace)
    deployments = get_json(control_plane, "deployments", "-n", namespace)["items"]
    route = get_json(control_plane, "httproute", "fraud-scorer", "-n", namespace)
    return (
        body["metadata"]["generation"],
        json.dumps(body["spec"], sort_keys=True),
        sorted((d["metadata"]["name"], d["spec"]["replicas"]) for d in deployments),
        json.dumps(route["spec"], sort_keys=True),
    )


@pytest.fixture(scope="module")
def empty(control_plane) -> Iterator[str]:
    """A namespace with no ModelDeployment, shared by the table; each case must leave it empty."""
    namespace = f"bad-new-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace)
    yield namespace
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.mark.parametrize(("case", "mutate", "message"), MODEL_DEPLOYMENTS, ids=[c[0] for c in MODEL_DEPLOYMENTS])
def test_bad_modeldeployment_is_rejected_at_creation_and_nothing_is_created(
    control_plane, empty, case, mutate, message
):
    bad = sample(trafficRouting={"gatewayAPI": {"parentRefs": [{"name": "public"}]}})
    mutate(bad["spec"])
    result = apply(control_plane, empty, bad)
    assert result.returncode != 0, f"{case}: created, not rejected: {result.stdout}"
    assert message in result.stderr, result.stderr
    created = get_json(control_plane, "modeldeployments", "-n", empty)["items"]
    assert created == [], f"{case}: ModelDeployments created in {empty}: {[c['metadata']['name'] for c in created]}"


@pytest.mark.parametrize(("case", "mutate", "message"), MODEL_DEPLOYMENTS, ids=[c[0] for c in MODEL_DEPLOYMENTS])
def test_bad_modeldeployment_update_is_rejected_and_changes_nothing(control_plane, serving, case, mutate, message):
    namespace, body = serving
    before = snapshot(control_plane, namespace)
    bad = copy.deepcopy(body)
    mutate(bad["spec"])
    result = apply(control_plane, namespace, bad)
    assert result.returncode != 0, f"{case}: accepted as an update, not rejected: {result.stdout}"
    assert message in result.stderr, result.stderr
    assert snapshot(control_plane, namespace) == before, f"{case}: the rejected update changed the serving one"


def test_a_one_megabyte_annotation_is_rejected(control_plane, serving):
    namespace, body = serving
    before = snapshot(control_plane, namespace)
    huge = copy.deepcopy(body)
    huge["metadata"]["annotations"] = {"notes": "x" * (1024 * 1024)}
    result = apply(control_plane, namespace, huge)
    assert result.returncode != 0
    assert "metadata.annotations: Too long" in result.stderr
    assert snapshot(control_plane, namespace) == before


def metric_change(**changes) -> Callable[[dict], None]:
    return lambda metric: metric.update(changes)


def provider_change(**changes) -> Callable[[dict], None]:
    return lambda metric: metric["provider"]["prometheus"].update(changes)


TEMPLATES: list[tuple[str, Callable[[dict], None], str]] = [
    ("no-condition", lambda m: m.pop("successCondition"), "set successCondition, failureCondition, or both"),
    ("no-provider", lambda m: m.pop("provider"), "provider: Required value"),
    ("empty-provider", metric_change(provider={}), "set exactly one provider: prometheus, web, datadog or job"),
    (
        "two-providers",
        lambda m: m["provider"].update(web={"url": "http://evaluator/score"}),
        "set exactly one provider: prometheus, web, datadog or job",
    ),
    (
        "datadog-without-keys",
        metric_change(provider={"datadog": {"query": "sum:errors{*}"}}),
        "apiKeySecretRef: Required value",
    ),
    ("web-url-not-http", metric_change(provider={"web": {"url": "file:///etc/passwd"}}), "url in body should match"),
    ("job-without-spec", metric_change(provider={"job": {"timeoutSeconds": 60}}), "provider.job.spec: Required value"),
    (
        "job-and-prometheus",
        lambda m: m["provider"].update(job={"spec": {"template": {}}}),
        "set exactly one provider: prometheus, web, datadog or job",
    ),
    (
        "web-header-twice",
        metric_change(
            provider={
                "web": {
                    "url": "https://evaluator/score",
                    "headers": [
                        {
                            "name": "Authorization",
                            "value": "x",
                            "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                        }
                    ],
                }
            }
        ),
        "set exactly one of value and valueFrom",
    ),
    (
        "web-path-not-jsonpath",
        metric_change(provider={"web": {"url": "https://e/s", "jsonPath": "data.score"}}),
        "jsonPath in body should match",
    ),
    ("interval-under-100ms", metric_change(interval="50ms"), "must be at least 100ms"),
    ("ftp-address", provider_change(address="ftp://prometheus"), "address in body should match"),
    ("no-query", lambda m: m["provider"]["prometheus"].pop("query"), "set exactly one of query and distribution"),
    (
        "two-credentials",
        provider_change(
            authentication={"bearerTokenSecretRef": {"name": "a", "key": "t"}, "basicAuthSecretRef": {"name": "b"}}
        ),
        "set one of bearerTokenSecretRef and basicAuthSecretRef",
    ),
    ("unknown-no-data-policy", metric_change(noDataPolicy="Pass"), 'noDataPolicy: Unsupported value: "Pass"'),
    ("no-measurements-kept", metric_change(measurementRetention=0), "measurementRetention in body should be greater"),
    (
        "too-many-measurements-kept",
        metric_change(measurementRetention=51),
        "measurementRetention in body should be less",
    ),
    ("dry-run-not-a-boolean", metric_change(dryRun="yes"), "dryRun in body must be of type boolean"),
]


@pytest.mark.parametrize(("case", "mutate", "message"), TEMPLATES, ids=[c[0] for c in TEMPLATES])
def test_bad_analysis_template_is_rejected(control_plane, serving, case, mutate, message):
    namespace, _ = serving
    bad = template(f"t-{case}")
    mutate(bad["spec"]["metrics"][0])
    result = control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert get_json(control_plane, "modelanalysistemplate", f"t-{case}", "-n", namespace) is None


def test_duplicate_metric_names_are_rejected(control_plane, serving):
    namespace, _ = serving
    bad = template("duplicates")
    bad["spec"]["metrics"].append(copy.deepcopy(bad["spec"]["metrics"][0]))
    result = control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0 and "metric names must be unique" in result.stderr


def test_a_modeldeployment_in_a_namespace_that_does_not_exist_is_rejected(control_plane, serving):
    _, body = serving
    result = apply(control_plane, "no-such-namespace", body)
    assert result.returncode != 0 and 'namespaces "no-such-namespace" not found' in result.stderr
    everywhere = get_json(control_plane, "modeldeployments", "-A")["items"]
    assert not [item for item in everywhere if item["metadata"]["namespace"] == "no-such-namespace"]


def parent_namespaces(control_plane, namespace: str) -> list[str]:
    route = get_json(control_plane, "httproute", "fraud-scorer", "-n", namespace)
    return [ref.get("namespace", "") for ref in route["spec"]["parentRefs"]]


def test_a_gateway_in_a_namespace_not_created_yet_is_referenced_not_rejected(control_plane, serving):
    """Gateway API allows a parent in a namespace that GitOps creates later; the gateway reports it, not us."""
    namespace, body = serving
    before = snapshot(control_plane, namespace)
    later = copy.deepcopy(body)
    later["spec"]["trafficRouting"] = {"gatewayAPI": {"parentRefs": [{"name": "public", "namespace": "created-later"}]}}
    try:
        assert apply(control_plane, namespace, later).returncode == 0
        wait_for(
            lambda: parent_namespaces(control_plane, namespace) == ["created-later"],
            what="the HTTPRoute names the parent as given",
        )
        wait_for(lambda: healthy(control_plane, namespace), what="still serving")
        assert snapshot(control_plane, namespace)[2] == before[2]  # the same Deployments at the same sizes
    finally:
        assert apply(control_plane, namespace, body).returncode == 0
        wait_for(lambda: snapshot(control_plane, namespace)[3] == before[3], what="route restored")
