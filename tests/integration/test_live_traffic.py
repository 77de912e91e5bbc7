"""Real requests to real models through a real data plane: the operator's weights are what clients get.

Traefik routes by the objects the operator writes (its own TraefikServices, or an HTTPRoute through its
Gateway) to real MLServer processes, one per pod, serving real scikit-learn models; a load generator sends
rows of the data set and records which model version answered each request. Nothing here reads the
weights the operator reports to compute what clients see: the shares are counted from the answers.

Figures (printed at the end of the run): the live share at each weight, the gap between the route write
that takes the canary out and the last answer a client got from it, and with dynamicStableScale the pods
asked for, the stable's shrink (delay, data plane, failed requests) and the drain of an aborted canary.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import json
import math
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from modelrollout.devcluster import prometheus as prometheus_server
from modelrollout.modelserver import behaviour as behaviours
from modelrollout.modelserver import models
from modelrollout.modelserver.loadgen import LoadGenerator, Snapshot, Users
from modelrollout.modelserver.settings import model_deployment, pod_template
from tests.conftest import FIGURES
from tests.integration.conftest import REPO, get_json, running_operator, wait_for
from tests.integration.helpers import (
    WatchReader,
    apply,
    healthy,
    kubectl_apply,
    md,
    object_watch,
    plugin,
    ready_pods,
    replicas_by_revision,
    sampled,
    shipped_alert,
    wait_events,
    wait_status,
)

NAME = "classifier"
STABLE_VERSION, NEW_VERSION = "2026-11-20", "2026-11-27"
RPS = 40.0
SAMPLE = 400  # answers per measured share: 4 sigma of a 10% share is 6 points
SIGMAS = 4.0


@dataclass
class Live:
    control_plane: object
    traefik: object
    prometheus: prometheus_server.Prometheus
    rows: tuple


def shipped_template(name: str, namespace: str, window: str = "5s", source: str = "real-server-templates") -> dict:
    """A built-in ClusterModelAnalysisTemplate as shipped, as a namespaced copy measuring at test speed."""
    shipped = yaml.safe_load_all((REPO / "manifests" / "analysis-templates" / f"{source}.yaml").read_text())
    template = copy.deepcopy(next(t for t in shipped if t["metadata"]["name"] == name))
    template["kind"] = "ModelAnalysisTemplate"
    template["metadata"] = {"name": name, "namespace": namespace}
    for arg in template["spec"]["args"]:
        if arg["name"] == "window":
            arg["value"] = window
    # The first 5s rate needs two scrapes of a revision that just got traffic: wait a window and a bit.
    template["spec"]["metrics"][0].update({"interval": "1s", "count": 3, "initialDelay": "8s"})
    return template


@pytest.fixture(scope="module")
def live(control_plane, traefik, model_servers) -> Iterator[Live]:
    """Prometheus scraping Traefik and the model-server pods (alerting on their real 5xx), and the operator."""
    rules = [{"name": "models", "rules": [shipped_alert("MLServerErrorRateHigh")]}]
    prometheus = prometheus_server.start([traefik.metrics_address], rules, pods_of=control_plane)
    try:
        with running_operator(prometheus.url):
            rows = models.load_dataset(models.ensure_models()).rows
            yield Live(control_plane, traefik, prometheus, rows)
    finally:
        prometheus.stop()


def host(namespace: str) -> str:
    return f"{namespace}.models.example"


def routing(router: str, namespace: str, traefik) -> dict:
    if router == "traefik":
        return {"traefik": {"match": f"Host(`{host(namespace)}`)"}}
    return {"gatewayAPI": {"parentRefs": [traefik.parent_ref()], "hostnames": [host(namespace)]}}


def release(live: Live, namespace: str, version: str, behaviour: str, strategy: dict, router="traefik", **spec):
    """Apply the ModelDeployment at `version`, served by the model `behaviour` says."""
    body = model_deployment(
        NAME,
        namespace,
        version,
        behaviour,
        routing(router, namespace, live.traefik),
        strategy,
        progressDeadlineSeconds=300,
        **spec,
    )
    assert apply(live.control_plane, namespace, body).returncode == 0


def stable_serving(live: Live, namespace: str, strategy: dict, router="traefik", **spec) -> str:
    """The good stable model applied and serving; returns its revision."""
    release(live, namespace, STABLE_VERSION, behaviours.GOOD, strategy, router, **spec)
    body = wait_for(lambda: healthy(live.control_plane, namespace, NAME), timeout=120, what="the stable model serving")
    return body["status"]["stableRevision"]


@contextlib.contextmanager
def load(live: Live, namespace: str, rps: float = RPS, **headers: str) -> Iterator[LoadGenerator]:
    """Requests at `rps` to the ModelDeployment's host through Traefik, with `headers` besides Host."""
    generator = LoadGenerator(
        live.traefik.web_url, NAME, live.rows, rps=rps, headers={"Host": host(namespace), **headers}
    )
    with generator:
        yield generator


def answers_after(generator: LoadGenerator, since: float, count: int = SAMPLE) -> Snapshot:
    """The first `count` answers to requests sent after `since` (monotonic)."""

    def enough():
        sent = [a for a in generator.snapshot().answers if a.at - a.seconds >= since]
        return Snapshot(tuple(sent[:count])) if len(sent) >= count else None

    return wait_for(enough, timeout=count / RPS * 4 + 30, what=f"{count} answers after the route changed")


def tolerance(share: float, count: int) -> float:
    """SIGMAS binomial standard deviations of the share, as a fraction (0 for a share of 0 or 1)."""
    return SIGMAS * math.sqrt(share * (1 - share) / count)


def applied_by_traefik(
    live: Live, router: str, namespace: str, canary_weight: int, stable_ips: set[str] | None = None
) -> float:
    """Wait until Traefik's own API serves the split with `canary_weight` to loaded servers; returns when seen.

    The weights alone are not enough: Traefik loads a route and the endpoints behind it in separate
    configuration rounds (two seconds apart at most), and a member without servers answers 503. After a
    promotion the stable Service selects other pods: `stable_ips` waits until Traefik has loaded exactly those.
    """
    # An HTTPRoute's weighted service is named by Traefik: found by the Services it splits between.
    name = f"{namespace}-{NAME}-split@kubernetescrd" if router == "traefik" else None
    api = f"{live.traefik.api_url}/http/services"

    def weights_now() -> bool:
        with urllib.request.urlopen(api, timeout=5) as response:
            services = {service["name"]: service for service in json.load(response)}
        for service in services.values():
            weighted = service.get("weighted") or {}
            members = {member["name"]: member.get("weight", 1) for member in weighted.get("services", [])}
            canary = [weight for member, weight in members.items() if f"{NAME}-canary" in member]
            if (name is None or service["name"] == name) and f"{namespace}-" in service["name"] and canary:
                stable = [member for member in members if f"{NAME}-stable" in member]
                loaded = stable_ips is None or (bool(stable) and servers_of(stable[0], service, services) == stable_ips)
                return canary[0] == canary_weight and serves(service, services) and loaded
        return False

    wait_for(weights_now, timeout=60, what=f"Traefik serving canary weight {canary_weight}")
    return time.monotonic()


def servers_of(member: str, parent: dict, services: dict[str, dict]) -> set[str]:
    """The IPs of the servers Traefik has loaded for one member of a weighted service."""
    provider = parent["name"].rpartition("@")[2]
    qualified = member if "@" in member else f"{member}@{provider}"
    servers = (services.get(qualified) or {}).get("loadBalancer", {}).get("servers", [])
    return {urllib.parse.urlsplit(server["url"]).hostname for server in servers}


def serves(service: dict, services: dict[str, dict]) -> bool:
    """Whether every member of a Traefik service that carries weight has at least one server loaded."""
    provider = service["name"].rpartition("@")[2]
    if "loadBalancer" in service:
        return bool(service["loadBalancer"].get("servers"))
    members = (service.get("weighted") or {}).get("services", [])
    if "mirroring" in service:
        members = [{"name": service["mirroring"]["service"], "weight": 1}]
    for member in members:
        if member.get("weight", 1) <= 0:
            continue
        qualified = member["name"] if "@" in member["name"] else f"{member['name']}@{provider}"
        if qualified not in services or not serves(services[qualified], services):
            return False
    return True


def mirror_applied_by_traefik(live: Live, namespace: str, percent: int) -> None:
    """Wait until Traefik's own API serves the mirroring TraefikService with `percent` to the canary."""
    api = f"{live.traefik.api_url}/http/services"

    def mirroring() -> bool:
        with urllib.request.urlopen(api, timeout=5) as response:
            services = {service["name"]: service for service in json.load(response)}
        service = services.get(f"{namespace}-{NAME}@kubernetescrd") or {}
        mirrors = (service.get("mirroring") or {}).get("mirrors") or []
        return [mirror.get("percent") for mirror in mirrors] == [percent] and serves(service, services)

    wait_for(mirroring, timeout=60, what=f"Traefik mirroring {percent}% to the canary")


def paused_at(control_plane, namespace: str, index: int, what: str, timeout: float = 180) -> dict:
    """The ModelDeployment once it waits for a person at step `index` (0-based)."""
    paused = lambda s: s["phase"] == "Paused" and s.get("currentStepIndex") == index  # noqa: E731
    return wait_status(control_plane, namespace, paused, what, name=NAME, timeout=timeout)


def aborted_for(control_plane, namespace: str, reason: str, what: str, timeout: float) -> dict:
    """The ModelDeployment once its rollout was aborted for `reason`."""
    aborted = lambda s: (s.get("abort") or {}).get("reason") == reason  # noqa: E731
    return wait_status(control_plane, namespace, aborted, what, name=NAME, timeout=timeout)


def sent_at(answer) -> float:
    return answer.at - answer.seconds


def share_of(snapshot: Snapshot, version: str) -> float:
    return snapshot.shares().get(version, 0.0)


@pytest.mark.parametrize("router", ["traefik", "gatewayAPI"])
def test_live_shares_follow_each_weight_and_the_promotion(control_plane, live, namespace, router):
    steps = [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}, {"setWeight": 100}, {"pause": {}}]
    stable_serving(live, namespace, {"canary": {"steps": steps}}, router)
    with load(live, namespace) as generator:
        since = applied_by_traefik(live, router, namespace, 0)
        assert share_of(answers_after(generator, since), STABLE_VERSION) == 1.0
        release(live, namespace, NEW_VERSION, behaviours.GOOD, {"canary": {"steps": steps}}, router)
        for step, weight in ((1, 10), (3, 50), (5, 100)):
            paused_at(control_plane, namespace, step, f"paused after setWeight {weight}")
            snapshot = answers_after(generator, applied_by_traefik(live, router, namespace, weight))
            measured = share_of(snapshot, NEW_VERSION)
            FIGURES[f"live share of the canary at setWeight {weight} ({router}, {SAMPLE} requests)"] = f"{measured:.3f}"
            assert abs(measured - weight / 100) <= tolerance(weight / 100, SAMPLE), (weight, measured)
            assert snapshot.error_ratio() == 0.0
            assert plugin(control_plane, "promote", NAME, "-n", namespace).returncode == 0
        done = wait_status(
            control_plane, namespace, lambda s: s["phase"] == "Healthy", "promoted", name=NAME, timeout=120
        )
        assert done["status"]["stableRevision"] == done["status"]["currentRevision"]
        stable = done["status"]["stableRevision"]
        new_pods = set(ready_pods(control_plane, namespace, f"modelrollout.io/revision={stable}").values())
        promoted = answers_after(generator, applied_by_traefik(live, router, namespace, 0, new_pods))
        assert share_of(promoted, NEW_VERSION) == 1.0


def test_an_alarm_on_real_errors_takes_the_canary_out_and_no_request_reaches_it_after(control_plane, live, namespace):
    steps = [{"setWeight": 50}, {"pause": {}}]
    strategy = {"canary": {"steps": steps}}
    extra = {"rollbackOn": {"alerts": [{"alertname": "MLServerErrorRateHigh"}], "pollInterval": "1s"}}
    stable_serving(live, namespace, strategy, **extra)
    with (
        load(live, namespace) as generator,
        object_watch(control_plane, namespace, "traefikservice", f"{NAME}-split") as watch,
    ):
        release(live, namespace, NEW_VERSION, behaviours.HOTFIX_ERRORS, strategy, **extra)
        aborted = aborted_for(control_plane, namespace, "AlertFiring", "the alarm's rollback", timeout=180)
        assert "MLServerErrorRateHigh" in aborted["status"]["abort"]["message"]
        served = applied_by_traefik(live, "traefik", namespace, 0)
        after = answers_after(generator, served, count=200)
        snapshot = generator.snapshot()

    def canary_weight(version: dict) -> int:
        services = version["spec"]["weighted"]["services"]
        return next(s["weight"] for s in services if s["name"] == f"{NAME}-canary")

    weights = [canary_weight(version) for version in watch.versions]
    assert 50 in weights and weights[-1] == 0
    written = next(
        at
        for at, version in zip(watch.received, watch.versions, strict=True)
        if canary_weight(version) == 0 and at > watch.received[weights.index(50)]
    )
    canary_answers = [a for a in snapshot.answers if a.version == NEW_VERSION or (a.status >= 500)]
    last = max(a.at for a in canary_answers)
    FIGURES["alarm rollback: route written → last answer from the canary"] = f"{last - written:.2f}s"
    FIGURES["alarm rollback: route written → Traefik serving it"] = f"{served - written:.2f}s"
    FIGURES["alarm rollback: 5xx answers clients got from the hotfix"] = str(
        sum(1 for a in snapshot.answers if a.status >= 500)
    )
    assert share_of(after, STABLE_VERSION) == 1.0 and after.error_ratio() == 0.0
    assert not [
        a for a in snapshot.answers if a.at - a.seconds >= served and (a.version == NEW_VERSION or a.status >= 500)
    ]


def test_a_full_shadow_copies_every_request_to_the_new_model_and_answers_only_from_the_stable(
    control_plane, live, namespace
):
    strategy = {"shadow": {"mirrorPercent": 100}, "canary": {"steps": [{"setWeight": 100}]}}
    stable_serving(live, namespace, strategy)
    release(live, namespace, NEW_VERSION, behaviours.SHIFTED, strategy)
    wait_status(
        control_plane,
        namespace,
        lambda s: s.get("stage") == "Shadow" and (s.get("weights") or {}).get("mirror") == 100,
        "mirroring 100%",
        name=NAME,
        timeout=180,
    )
    mirror_applied_by_traefik(live, namespace, 100)
    with load(live, namespace) as generator:
        answered = answers_after(generator, time.monotonic())
    snapshot = generator.snapshot()
    assert share_of(snapshot, STABLE_VERSION) == 1.0 and snapshot.error_ratio() == 0.0
    sent = len(snapshot.answers)
    seen: dict[str, float] = {}

    def counted() -> dict[str, float] | None:
        seen.update(server_requests(live, namespace))
        near = seen.get(STABLE_VERSION, 0) >= sent and abs(seen.get(NEW_VERSION, 0) - sent) <= 0.05 * sent
        return dict(seen) if near else None

    try:
        counts = wait_for(counted, timeout=60, what=f"the shadow's own counter near the {sent} requests answered")
    except TimeoutError as error:
        raise AssertionError(f"{error}; servers counted {seen}") from None
    FIGURES["shadow 100%: requests counted by the shadow's server / answered by the stable"] = (
        f"{counts[NEW_VERSION]:.0f} / {sent}"
    )
    assert len(answered.answers) == SAMPLE


def server_requests(live: Live, namespace: str) -> dict[str, float]:
    """Inference requests each model version's servers counted themselves (from Prometheus), by version."""
    query = f'sum by (model_version) (rest_server_requests_total{{namespace="{namespace}",path=~".*/infer"}})'
    url = f"{live.prometheus.url}/api/v1/query?query={urllib.parse.quote(query)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        result = json.load(response)["data"]["result"]
    return {item["metric"].get("model_version", ""): float(item["value"][1]) for item in result}


def test_blue_green_switches_in_one_write_and_a_failed_check_switches_back(control_plane, live, namespace):
    kubectl_apply(control_plane, namespace, shipped_template("mlserver-error-rate", namespace))
    analysis = {
        "templates": [{"name": "mlserver-error-rate"}],
        "args": [{"name": "prometheus", "value": live.prometheus.url}],
    }
    strategy = {"blueGreen": {"autoPromotionSeconds": 1, "postPromotionAnalysis": analysis}}
    old = stable_serving(live, namespace, strategy)
    with (
        load(live, namespace) as generator,
        object_watch(control_plane, namespace, "service", f"{NAME}-stable") as watch,
    ):
        release(live, namespace, NEW_VERSION, behaviours.HOTFIX_ERRORS, strategy)
        back = aborted_for(
            control_plane, namespace, "AnalysisFailed", "the post-promotion check switching back", timeout=180
        )
        wait_for(
            lambda: watch.versions[-1]["spec"]["selector"]["modelrollout.io/revision"] == old,
            timeout=30,
            what="the Service back on the old revision",
        )
        switched_back = watch.received[-1]
        restored = wait_for(
            lambda: next(
                (
                    a.at
                    for a in generator.snapshot().answers
                    if a.version == STABLE_VERSION and sent_at(a) > switched_back
                ),
                None,
            ),
            timeout=60,
            what="the old model answering again",
        )
        after = answers_after(generator, restored, count=200)
        snapshot = generator.snapshot()
    selected = [version["spec"]["selector"]["modelrollout.io/revision"] for version in watch.versions]
    changes = [revision for i, revision in enumerate(selected) if i == 0 or revision != selected[i - 1]]
    # One write each way: the Service selects the old revision, then the new one, then the old one again.
    assert len(changes) == 3 and changes[0] == changes[2] == old != changes[1]
    switched = watch.received[selected.index(changes[1])]
    assert share_of(Snapshot(tuple(a for a in snapshot.answers if a.at < switched)), STABLE_VERSION) == 1.0
    # A clean switch: in the order requests were sent, once the new model answered, the old one never did
    # again until the switch back (a 5xx comes from the hotfix: MLServer's error body names no version).
    window = [a for a in snapshot.answers if switched <= a.at - a.seconds < switched_back]
    served = ["new" if a.version == NEW_VERSION or a.status >= 500 else "old" for a in sorted(window, key=sent_at)]
    assert "new" in served and "old" not in served[served.index("new") :], served
    bad_answers = [a for a in snapshot.answers if a.version == NEW_VERSION or a.status >= 500]
    FIGURES["blue/green: requests the bad model answered before the switch back"] = (
        f"{len(bad_answers)} ({sum(1 for a in bad_answers if a.status >= 500)} of them 5xx)"
    )
    assert "error-rate" in back["status"]["abort"]["message"]
    assert share_of(after, STABLE_VERSION) == 1.0 and after.error_ratio() == 0.0


def test_gateway_api_shadow_on_a_class_that_does_not_declare_mirroring_waits_and_no_request_fails(
    control_plane, live, namespace
):
    assert "HTTPRouteRequestMirror" not in {
        feature.get("name") for feature in live.traefik.gateway_class_status().get("supportedFeatures", [])
    }
    strategy = {"shadow": {"mirrorPercent": 100}, "canary": {"steps": [{"setWeight": 100}]}}
    stable_serving(live, namespace, strategy, "gatewayAPI")
    applied_by_traefik(live, "gatewayAPI", namespace, 0)  # clients start once Traefik serves the route
    with load(live, namespace) as generator:
        release(live, namespace, NEW_VERSION, behaviours.GOOD, strategy, "gatewayAPI")
        held = wait_status(
            control_plane,
            namespace,
            lambda s: any(c["reason"] == "MirrorUnsupported" for c in s.get("conditions", [])),
            "the shadow refused",
            name=NAME,
            timeout=180,
        )
        answers_after(generator, time.monotonic(), count=200)
        snapshot = generator.snapshot()
    assert held["status"]["phase"] == "Progressing" and live.traefik.gateway_class in held["status"]["message"]
    route = get_json(control_plane, "httproute", NAME, "-n", namespace)
    assert "filters" not in route["spec"]["rules"][0]
    warnings = [
        e
        for e in wait_events(control_plane, namespace, "MirrorUnsupported", name=NAME)
        if e["reason"] == "MirrorUnsupported"
    ]
    assert warnings and live.traefik.gateway_class in warnings[0]["note"]
    assert snapshot.error_ratio() == 0.0 and share_of(snapshot, STABLE_VERSION) == 1.0


QA_HEADER = "x-model-qa"
QA_ROUTE = {"name": "qa", "match": [{"headerName": QA_HEADER, "headerValue": {"exact": "yes"}}]}
QA_RPS, USERS_RPS = 10.0, 30.0


def dark_launch(live: Live, namespace: str) -> dict:
    """The stable model serving through Traefik with a dark launch as its strategy (returned): only QA's
    header reaches the new model, a person goes on, the analysis judges QA's traffic, then users get 50%."""
    kubectl_apply(live.control_plane, namespace, shipped_template("mlserver-error-rate", namespace))
    analysis = {
        "templates": [{"name": "mlserver-error-rate"}],
        "args": [{"name": "prometheus", "value": live.prometheus.url}],
    }
    steps = [
        {"setHeaderRoute": QA_ROUTE},
        {"pause": {}},  # QA looks at the new model; a person promotes to its analysis
        {"analysis": analysis},
        {"setHeaderRoute": {"name": "qa"}},
        {"setWeight": 50},
        {"pause": {}},
    ]
    strategy = {"canary": {"steps": steps}}
    stable_serving(live, namespace, strategy)
    applied_by_traefik(live, "traefik", namespace, 0)
    return strategy


def from_new_model(answer) -> bool:
    """Answered by the new model: its version, or a 5xx (MLServer's error body names no version)."""
    return answer.version == NEW_VERSION or answer.status >= 500


def test_a_dark_launch_serves_the_qa_header_only_and_then_takes_the_normal_steps(control_plane, live, namespace):
    strategy = dark_launch(live, namespace)
    with (
        load(live, namespace, USERS_RPS) as users,
        load(live, namespace, QA_RPS, **{QA_HEADER: "yes"}) as qa,
        object_watch(control_plane, namespace, "traefikservice", f"{NAME}-split") as watch,
    ):
        release(live, namespace, NEW_VERSION, behaviours.GOOD, strategy)
        paused_at(control_plane, namespace, 1, "the QA route in place")
        reached = wait_for(
            lambda: qa.snapshot().first_answer(NEW_VERSION), timeout=60, what="QA reaching the new model"
        )
        dark = answers_after(qa, reached, count=100)
        shown = plugin(control_plane, "status", NAME, "-n", namespace)
        assert plugin(control_plane, "promote", NAME, "-n", namespace).returncode == 0
        at_fifty = paused_at(control_plane, namespace, 5, "the analysis passed, the route removed, users at 50%", 240)
        # QA's part is over. Traefik's weighted round robin interleaves requests in a fixed order, so two steady
        # clients lock into its phase (QA's 1 in 4 requests all landing on the canary's turns): users alone.
        qa.stop()
        live_share = answers_after(users, applied_by_traefik(live, "traefik", namespace, 50))
        snapshot = users.snapshot()
    weights = [
        next(s["weight"] for s in v["spec"]["weighted"]["services"] if s["name"] == f"{NAME}-canary")
        for v in watch.versions
    ]
    raised = next(at for at, weight in zip(watch.received, weights, strict=True) if weight > 0)
    before = [a for a in snapshot.answers if sent_at(a) < raised]
    FIGURES["dark launch: user requests before the weight rose / answered by the new model"] = (
        f"{len(before)} / {sum(from_new_model(a) for a in before)}"
    )
    assert before and not [a for a in before if from_new_model(a)]
    assert share_of(dark, NEW_VERSION) == 1.0 and dark.error_ratio() == 0.0
    assert shown.returncode == 0, shown.stderr
    assert "Header route: qa (header x-model-qa exact 'yes') -> canary, whatever its weight" in shown.stdout
    assert "headerRoutes" not in at_fifty["status"]["intent"]
    measured = share_of(live_share, NEW_VERSION)
    FIGURES[f"dark launch, then setWeight 50: live share of the new model ({SAMPLE} user requests)"] = f"{measured:.3f}"
    assert abs(measured - 0.5) <= tolerance(0.5, SAMPLE), measured


def test_a_bad_model_caught_in_its_dark_launch_never_answers_a_user(control_plane, live, namespace):
    strategy = dark_launch(live, namespace)
    with (
        load(live, namespace, USERS_RPS) as users,
        load(live, namespace, QA_RPS, **{QA_HEADER: "yes"}) as qa,
    ):
        release(live, namespace, NEW_VERSION, behaviours.HOTFIX_ERRORS, strategy)
        paused_at(control_plane, namespace, 1, "the QA route in place")
        assert plugin(control_plane, "promote", NAME, "-n", namespace).returncode == 0
        aborted = aborted_for(
            control_plane, namespace, "AnalysisFailed", "the dark launch's analysis rolling back", timeout=240
        )
        wait_for(
            lambda: len(get_json(control_plane, "ingressroute", NAME, "-n", namespace)["spec"]["routes"]) == 1,
            timeout=30,
            what="the QA route removed",
        )
        removed = time.monotonic()
        back = wait_for(
            lambda: next((a.at for a in qa.snapshot().answers if sent_at(a) > removed and not from_new_model(a)), None),
            timeout=60,
            what="QA answered by the stable model again",
        )
        after = answers_after(qa, back, count=100)
        qa_snapshot, user_snapshot = qa.snapshot(), users.snapshot()
    qa_bad = [a for a in qa_snapshot.answers if from_new_model(a)]
    FIGURES["dark launch of a bad model: QA answers from it / user answers from it"] = (
        f"{len(qa_bad)} / {sum(from_new_model(a) for a in user_snapshot.answers)}"
    )
    assert "error-rate" in aborted["status"]["abort"]["message"]
    assert qa_bad and any(a.status >= 500 for a in qa_bad)
    assert user_snapshot.answers and not [a for a in user_snapshot.answers if from_new_model(a)]
    assert share_of(after, STABLE_VERSION) == 1.0 and after.error_ratio() == 0.0


COHORT_USERS, COHORT_ROUNDS = 200, 3


def test_sticky_cohorts_keep_each_of_200_users_on_one_model_as_the_weight_grows(control_plane, live, namespace):
    steps = [{"setWeight": 30}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]
    strategy = {"canary": {"steps": steps, "sessionAffinity": {"cookieName": "model-cohort"}}}
    stable_serving(live, namespace, strategy)
    release(live, namespace, NEW_VERSION, behaviours.GOOD, strategy)
    users = Users(live.traefik.web_url, NAME, live.rows, COHORT_USERS, headers={"Host": host(namespace)})

    paused_at(control_plane, namespace, 1, "paused at step 2")
    applied_by_traefik(live, "traefik", namespace, 30)
    for _ in range(COHORT_ROUNDS):
        users.round()
    cohorts = {user: users.versions(user) for user in range(COHORT_USERS)}
    assert plugin(control_plane, "promote", NAME, "-n", namespace).returncode == 0
    paused_at(control_plane, namespace, 3, "paused at step 4")
    applied_by_traefik(live, "traefik", namespace, 60)
    for _ in range(COHORT_ROUNDS):
        users.round()
    shown = plugin(control_plane, "status", NAME, "-n", namespace)
    assert plugin(control_plane, "abort", NAME, "-n", namespace).returncode == 0
    wait_status(control_plane, namespace, lambda s: bool(s.get("abort")), "aborted", name=NAME, timeout=60)
    applied_by_traefik(live, "traefik", namespace, 0)
    first_after_abort = len(users.answers[0])
    users.round()

    assert "Cohorts:     sticky by cookie model-cohort, for the browser session" in shown.stdout, shown.stdout
    on_new = sum(1 for seen in cohorts.values() if seen == {NEW_VERSION})
    FIGURES[f"sticky cohorts: users on the new model at 30% ({COHORT_USERS} users)"] = f"{on_new}"
    answered = [sum(200 <= a.status < 300 for a in users.answers[user]) for user in range(COHORT_USERS)]
    assert min(answered) == 2 * COHORT_ROUNDS + 1, "every request of every user answered"
    through_60 = [{a.version for a in users.answers[user][:first_after_abort]} for user in range(COHORT_USERS)]
    switched = [user for user in range(COHORT_USERS) if len(through_60[user]) != 1]
    assert not switched, f"users who saw both models before the abort: {switched[:10]}"
    assert abs(on_new / COHORT_USERS - 0.3) <= tolerance(0.3, COHORT_USERS), on_new
    after_abort = {a.version for user in range(COHORT_USERS) for a in users.answers[user][first_after_abort:]}
    assert after_abort == {STABLE_VERSION}


@pytest.mark.parametrize(("behaviour", "passes"), [(behaviours.GOOD, True), (behaviours.SHIFTED, False)])
def test_an_experiment_passes_equal_models_and_fails_a_shifted_one(control_plane, live, namespace, behaviour, passes):
    template = shipped_template(
        "model-prediction-distribution-shift", namespace, window="20s", source="model-templates"
    )
    template["spec"]["metrics"][0].update({"interval": "2s", "count": 3, "initialDelay": "22s"})
    kubectl_apply(control_plane, namespace, template)
    analysis = {
        "templates": [{"name": "model-prediction-distribution-shift"}],
        "args": [{"name": "prometheus", "value": live.prometheus.url}],
    }
    steps = [{"experiment": {"weight": 50, "duration": "30s", "analysis": analysis}}, {"pause": {}}]
    stable_serving(live, namespace, {"canary": {"steps": steps}})
    with load(live, namespace):
        release(live, namespace, NEW_VERSION, behaviour, {"canary": {"steps": steps}})
        if passes:
            done = paused_at(control_plane, namespace, 1, "the experiment passed", timeout=240)
        else:
            done = aborted_for(control_plane, namespace, "AnalysisFailed", "the experiment failed", timeout=240)
    status = done["status"]
    (run,) = [run for run in status["analysisRuns"] if run["key"].endswith("-step-0")]
    values = [m.get("value") for metric in run["metrics"] for m in metric["measurements"]]
    FIGURES[f"experiment at 50%: PSI of prediction scores, {behaviour} model against the stable"] = str(values)
    if passes:
        assert status["weights"]["canary"] == 50 and run["phase"] == "Successful"
        assert "(experiment at 50% for 30s) passed" in status["history"][-1]["message"]
    else:
        assert status["weights"]["canary"] == 0 and "prediction-distribution-shift" in status["abort"]["message"]


BETA_ROUTE = {"name": "beta", "match": [{"cookie": {"name": "model-track", "value": "beta"}}]}
MATCHED = {  # a route, and the header a matching client sends (a cookie among others, for the cookie route)
    "exact-header": (QA_ROUTE, {QA_HEADER: "yes"}),
    "cookie": (BETA_ROUTE, {"Cookie": "session=42; model-track=beta; theme=dark"}),
}


@pytest.mark.parametrize("kind", list(MATCHED))
def test_a_header_route_on_gateway_api_reaches_the_new_model_through_traefiks_gateway(
    control_plane, live, namespace, kind
):
    """The HTTPRoute's header rule as Traefik's Gateway API provider serves it (an Exact match, or the
    cookie's anchored RegularExpression on the Cookie header): matching clients only, never other users."""
    route, headers = MATCHED[kind]
    strategy = {"canary": {"steps": [{"setHeaderRoute": route}, {"pause": {}}]}}
    stable_serving(live, namespace, strategy, "gatewayAPI")
    applied_by_traefik(live, "gatewayAPI", namespace, 0)
    with (
        load(live, namespace, USERS_RPS, Cookie="session=42; model-track=stable") as users,
        load(live, namespace, QA_RPS, **headers) as matched,
    ):
        release(live, namespace, NEW_VERSION, behaviours.GOOD, strategy, "gatewayAPI")
        paused_at(control_plane, namespace, 1, "the route in place")
        reached = wait_for(
            lambda: matched.snapshot().first_answer(NEW_VERSION), timeout=60, what="matched requests reaching it"
        )
        dark = answers_after(matched, reached, count=100)
        answers_after(users, reached, count=200)
        snapshot = users.snapshot()
    FIGURES[f"dark launch on Gateway API ({kind}): other user requests / answered by the new model"] = (
        f"{len(snapshot.answers)} / {sum(from_new_model(a) for a in snapshot.answers)}"
    )
    assert share_of(dark, NEW_VERSION) == 1.0 and dark.error_ratio() == 0.0
    assert snapshot.answers and not [a for a in snapshot.answers if from_new_model(a)]


FLEET = 4  # dynamicStableScale: 2 pods per revision at 50%, at most 6 MLServers at once (the stable back to 4)
ABORT_DELAY = 5
SCALE_DOWN_DELAY = 5  # the stable shrinks this long after the route moved: Traefik applies a route within 2 s
PRESTOP_SLEEP = 5  # a removed pod's server keeps serving this long: Traefik drops its endpoint within 2 s
DRAIN = re.compile(
    r"revision (\w+) keeps (\d+)% until stable revision (\w+) has the pods for all traffic \((\d+)/(\d+) available\)"
)


@contextlib.contextmanager
def deployments_watch(control_plane, namespace: str) -> Iterator[WatchReader]:
    """A live watch of the ModelDeployment's Deployments in one stream, so their changes keep their order."""
    command = [str(control_plane.binaries.kubectl), f"--kubeconfig={control_plane.kubeconfig}", "get", "deployments"]
    command += ["-n", namespace, "-l", f"modelrollout.io/deployment={NAME}", "--watch", "-o", "json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    watch = WatchReader(process.stdout)
    try:
        wait_for(lambda: watch.versions, timeout=30, what="the Deployments watch's first object")
        yield watch
    finally:
        process.terminate()
        process.wait(timeout=30)
        watch.join()


@contextlib.contextmanager
def cordoned(control_plane) -> Iterator[None]:
    """Every node unschedulable while the block runs: new pods wait in Pending, as when the capacity a shrunk
    stable gave back went to other workloads (running pods keep running: only scheduling stops)."""
    nodes = [node["metadata"]["name"] for node in get_json(control_plane, "nodes")["items"]]
    try:
        for node in nodes:
            control_plane.kubectl("cordon", node)
        yield
    finally:
        for node in nodes:
            control_plane.kubectl("uncordon", node)


def unschedulable(control_plane, namespace: str, selector: str) -> int:
    """How many pods matching `selector` the scheduler found no node for."""
    pods = get_json(control_plane, "pods", "-n", namespace, "-l", selector)["items"]
    return sum(
        any(
            c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"
            for c in pod["status"].get("conditions", [])
        )
        for pod in pods
    )


def split_servers(live: Live, namespace: str) -> dict[str, set[str]]:
    """The IPs of the servers Traefik has loaded behind each side ("stable", "canary") of the TraefikService split."""
    with urllib.request.urlopen(f"{live.traefik.api_url}/http/services", timeout=5) as response:
        services = {service["name"]: service for service in json.load(response)}
    split = services[f"{namespace}-{NAME}-split@kubernetescrd"]
    members = [member["name"] for member in split["weighted"]["services"]]
    return {
        side: servers_of(next(member for member in members if f"{NAME}-{side}" in member), split, services)
        for side in ("stable", "canary")
    }


def draining_template(version: str) -> dict:
    """The good model's pod template with the preStop sleep a scaled-down pod needs to drop no request: it keeps
    serving while the data plane drops its endpoint (the harness plays the kubelet's hook)."""
    template = pod_template(NAME, version, behaviours.GOOD)
    template["spec"]["containers"][0]["lifecycle"] = {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP}}}
    return template


def split_weight(version: dict) -> int:
    """The canary side's weight in one version of the TraefikService split."""
    return next(s["weight"] for s in version["spec"]["weighted"]["services"] if s["name"] == f"{NAME}-canary")


def test_dynamic_stable_scale_shrinks_the_stable_and_an_abort_waits_for_its_pods_before_moving_traffic(
    control_plane, live, model_servers, namespace
):
    """The stable runs the 2 pods its 50% needs, given up scaleDownDelaySeconds after the route moved; with a
    preStop sleep on the model server, no request fails as they go. On an abort the stable is asked back to 4 at
    once, but while its new pods find no node the aborted canary keeps its 50%, its pods and the canary Service;
    once they are up, traffic leaves the canary, and its pods go abortScaleDownDelaySeconds after. No request
    fails from start to end."""
    steps = [{"setWeight": 50}, {"pause": {}}]
    strategy = {
        "canary": {
            "steps": steps,
            "dynamicStableScale": True,
            "scaleDownDelaySeconds": SCALE_DOWN_DELAY,
            "abortScaleDownDelaySeconds": ABORT_DELAY,
        }
    }
    stable = stable_serving(live, namespace, strategy, replicas=FLEET, template=draining_template(STABLE_VERSION))
    of_stable = f"modelrollout.io/revision={stable}"
    fleet = ready_pods(control_plane, namespace, of_stable)
    assert len(fleet) == FLEET, fleet
    applied_by_traefik(live, "traefik", namespace, 0)  # clients start once Traefik serves the route
    with contextlib.ExitStack() as stack:
        generator = stack.enter_context(load(live, namespace))
        statuses = stack.enter_context(object_watch(control_plane, namespace, "modeldeployment", NAME))
        split = stack.enter_context(object_watch(control_plane, namespace, "traefikservice", f"{NAME}-split"))
        canary_service = stack.enter_context(object_watch(control_plane, namespace, "service", f"{NAME}-canary"))
        deployments = stack.enter_context(deployments_watch(control_plane, namespace))
        loaded = stack.enter_context(sampled(lambda: split_servers(live, namespace)))  # what Traefik sends to
        release(
            live,
            namespace,
            NEW_VERSION,
            behaviours.GOOD,
            strategy,
            replicas=FLEET,
            template=draining_template(NEW_VERSION),
        )
        paused = paused_at(control_plane, namespace, 1, "paused at 50%")["status"]
        canary = paused["canaryRevision"]

        def shrunk() -> set[str] | None:
            pods = ready_pods(control_plane, namespace, of_stable)
            size = replicas_by_revision(control_plane, namespace, NAME)[stable]
            return set(pods.values()) if size == 2 and len(pods) == 2 else None

        stable_ips = wait_for(shrunk, timeout=60, what="the stable shrunk to the 2 pods its 50% needs")
        at_pause = replicas_by_revision(control_plane, namespace, NAME)
        shrink_served = applied_by_traefik(live, "traefik", namespace, 50, stable_ips)
        removed = {f"{namespace}/{pod}" for pod, ip in fleet.items() if ip not in stable_ips}
        wait_for(
            lambda: removed <= set(model_servers.stopped_at()),
            timeout=PRESTOP_SLEEP + 30,
            what=f"the harness stopping the servers of the stable's removed pods {sorted(removed)}",
        )
        removed_stopped = {key: at for key, at in model_servers.stopped_at().items() if key in removed}
        dropped = loaded.first(lambda servers: servers["stable"] == stable_ips, "Traefik's stable side shrunk")
        at_half = answers_after(generator, shrink_served)
        canary_ips = set(ready_pods(control_plane, namespace, f"modelrollout.io/revision={canary}").values())

        with cordoned(control_plane):
            requested = time.monotonic()
            aborted = plugin(control_plane, "abort", NAME, "-n", namespace)
            wait_for(
                lambda: unschedulable(control_plane, namespace, of_stable) == FLEET - 2,
                timeout=60,
                what="the stable's new pods waiting for a node",
            )
            held = md(control_plane, namespace, NAME)["status"]
            held_replicas = replicas_by_revision(control_plane, namespace, NAME)
            held_servers = split_servers(live, namespace)
            holding = answers_after(generator, time.monotonic())
            retried = plugin(control_plane, "retry", NAME, "-n", namespace)
            held_after = md(control_plane, namespace, NAME)["status"]
        released = time.monotonic()

        wait_status(
            control_plane,
            namespace,
            lambda s: s["weights"]["canary"] == 0,
            "the aborted canary's share at 0% once the stable's pods are up",
            name=NAME,
            timeout=180,
        )
        full = wait_for(
            lambda: ips if len(ips := set(ready_pods(control_plane, namespace, of_stable).values())) == FLEET else None,
            timeout=60,
            what=f"{FLEET} stable pods Ready",
        )
        served = applied_by_traefik(live, "traefik", namespace, 0, full)
        after = answers_after(generator, served, count=200)
        wait_for(
            lambda: replicas_by_revision(control_plane, namespace, NAME).get(canary) == 0,
            timeout=60,
            what=f"the aborted canary scaled to 0 after {ABORT_DELAY}s",
        )
        scaled = next(
            at
            for at, version in zip(deployments.received, deployments.versions, strict=True)
            if version["metadata"]["name"] == f"{NAME}-{canary}" and version["spec"]["replicas"] == 0
        )
        answers_after(generator, scaled, count=100)  # and clients keep their answers once its pods are gone
        snapshot = generator.snapshot()

    # At the pause the stable runs the pods its 50% needs: 4 pods in all, not 2 fleets of 4.
    assert at_pause == {stable: 2, canary: 2}, at_pause
    # The route at 50% is new at the pause: the share that has stood for scaleDownDelaySeconds is still 0.
    route = paused["canaryRoute"]
    assert (route["revision"], route["weight"], route["settled"], bool(route["since"])) == (canary, 50, 0, True), route
    weights = [split_weight(version) for version in split.versions]
    moved = split.received[weights.index(50)]
    stable_sizes = [
        (at, version["spec"]["replicas"])
        for at, version in zip(deployments.received, deployments.versions, strict=True)
        if version["metadata"]["name"] == f"{NAME}-{stable}"
    ]
    sizes = [size for i, (_, size) in enumerate(stable_sizes) if i == 0 or size != stable_sizes[i - 1][1]]
    assert sizes == [FLEET, 2, FLEET], sizes
    measured = share_of(at_half, NEW_VERSION)
    assert abs(measured - 0.5) <= tolerance(0.5, SAMPLE) and at_half.error_ratio() == 0.0, measured

    # The shrink: written scaleDownDelaySeconds after the route (the delay is stamped in whole seconds). The removed
    # pods' servers still ran when Traefik had dropped them (seen by reads of its API every 0.1 s), and stopped only
    # after their preStop sleep (the watch sees the shrink a little after it is written: half a second allowed), so no
    # request failed as they left.
    shrank = next(at for at, size in stable_sizes if size == 2)
    assert shrank - moved >= SCALE_DOWN_DELAY - 1, f"the stable shrank {shrank - moved:.2f}s after the route moved"
    assert len(removed) == FLEET - 2 and set(removed_stopped) == removed, (removed, removed_stopped)
    first_stop = min(removed_stopped.values())
    assert first_stop > dropped, f"a removed pod's server stopped {dropped - first_stop:.2f}s before Traefik dropped it"
    assert first_stop - shrank >= PRESTOP_SLEEP - 0.5, f"stopped {first_stop - shrank:.2f}s after the shrink"
    shrinking = [a for a in snapshot.answers if moved <= sent_at(a) < shrink_served]
    shrink_errors = collections.Counter(a.status for a in shrinking if not 200 <= a.status < 300)
    assert shrinking and not shrink_errors, f"failed requests at the shrink, by status: {dict(shrink_errors)}"

    # Aborted while the stable's new pods find no node: its 2 available pods carry 50%, so the canary keeps 50%,
    # its 2 pods and the canary Service, and both models keep answering; a retry waits for the drain.
    assert aborted.returncode == 0, aborted.stderr
    assert f"revision {canary} aborted; traffic moves back to {stable} as its pods become available" in aborted.stdout
    assert held["abort"]["reason"] == "Aborted" and held["weights"]["canary"] == 50
    assert (
        f"revision {canary} keeps 50% until stable revision {stable} has the pods for all traffic (2/{FLEET} available)"
        in held["message"]
    ), held["message"]
    assert held_replicas == {stable: FLEET, canary: 2}, held_replicas
    assert held_servers == {"stable": stable_ips, "canary": canary_ips}, held_servers
    held_share = share_of(holding, NEW_VERSION)
    assert abs(held_share - 0.5) <= tolerance(0.5, SAMPLE) and holding.error_ratio() == 0.0, held_share
    assert retried.returncode == 1 and "retry once it has drained" in retried.stderr, retried
    assert held_after["weights"]["canary"] == 50 and held_after["abort"]["reason"] == "Aborted"
    assert f"stable revision {stable} serves all traffic" not in held["message"], held["message"]
    (event,) = [
        e for e in wait_events(control_plane, namespace, "RolloutAborted", name=NAME) if e["reason"] == "RolloutAborted"
    ]
    assert (
        f"traffic moves back, as fast as its pods become available (dynamicStableScale), to stable revision {stable}"
        in (event["note"])
    )

    # Every status from the abort on: the share never rises, and is what the stable's available pods leave over.
    first_aborted = next(i for i, v in enumerate(statuses.versions) if (v.get("status") or {}).get("abort"))
    reported = list(zip(statuses.received, [v["status"] for v in statuses.versions], strict=True))[first_aborted:]
    shares = [status["weights"]["canary"] for _, status in reported]
    assert shares[0] == 50 and shares[-1] == 0 and shares == sorted(shares, reverse=True), shares
    for _, status in reported:
        found = DRAIN.search(status["message"])
        if status["weights"]["canary"] == 0:
            assert found is None, status["message"]
            continue
        assert found and f"stable revision {stable} serves all traffic" not in status["message"], status["message"]
        revision, share, named_stable, available, replicas = found.groups()
        assert (revision, named_stable, int(replicas)) == (canary, stable, FLEET)
        assert int(share) == status["weights"]["canary"] == min(50, 100 - 100 * int(available) // FLEET)

    # The data plane: the route and the canary Service leave the aborted revision only once the stable's pods
    # could come up; from Traefik serving 0% on, no answer from the new model; from the abort on, no failure.
    selected = [version["spec"]["selector"]["modelrollout.io/revision"] for version in canary_service.versions]
    changes = [i for i, revision in enumerate(selected) if i == 0 or revision != selected[i - 1]]
    assert [selected[i] for i in changes] == [stable, canary, stable], selected
    assert canary_service.received[changes[2]] > released
    after_abort = [weight for at, weight in zip(split.received, weights, strict=True) if at > requested]
    assert after_abort == sorted(after_abort, reverse=True) and after_abort[-1] == 0, after_abort
    zero = next(at for at, weight in zip(split.received, weights, strict=True) if at > requested and weight == 0)
    assert zero > released
    assert share_of(after, STABLE_VERSION) == 1.0 and after.error_ratio() == 0.0
    assert not [a for a in snapshot.answers if sent_at(a) >= served and from_new_model(a)]
    since_abort = [a for a in snapshot.answers if sent_at(a) >= requested]
    failed = [a for a in since_abort if not 200 <= a.status < 300]
    assert not failed, failed[:10]
    # The aborted canary's pods go abortScaleDownDelaySeconds after the route reached 0% (whole-second stamps).
    assert scaled - zero >= ABORT_DELAY - 1, f"the canary scaled to 0 {scaled - zero:.2f}s after the route at 0%"
    # And from the first request to the last, none failed (sent times from the route at 50%).
    every_failure = [(round(sent_at(a) - moved, 2), a.status) for a in snapshot.answers if not 200 <= a.status < 300]
    assert not every_failure, f"failed requests (sent s after the route at 50%, status): {every_failure[:20]}"

    # Figures: the pods asked for at once (the two Deployments' replicas, in the order the watch saw them).
    replicas: dict[str, int] = {}
    peak = 0
    for version in deployments.versions:
        replicas[version["metadata"]["name"]] = version["spec"]["replicas"]
        peak = max(peak, sum(replicas.values()))
    assert peak < 2 * FLEET, peak
    ready_again = next(
        at
        for at, version in zip(deployments.received, deployments.versions, strict=True)
        if at > released
        and version["metadata"]["name"] == f"{NAME}-{stable}"
        and version.get("status", {}).get("availableReplicas") == FLEET
    )
    last_new = max(a.at for a in snapshot.answers if from_new_model(a))
    sequence = ", ".join(f"{status['weights']['canary']}% at {at - released:+.1f}s" for at, status in reported)
    FIGURES["dynamicStableScale: replicas at the pause (stable, canary) / peak pods asked for at once"] = (
        f"{at_pause[stable]}, {at_pause[canary]} / {peak} (fleet {FLEET})"
    )
    FIGURES[
        f"dynamicStableScale: route at 50% written → stable shrink written (scaleDownDelaySeconds {SCALE_DOWN_DELAY})"
        " / Traefik serving the shrunk stable"
    ] = f"{shrank - moved:.2f}s / {shrink_served - moved:.2f}s"
    FIGURES[
        f"dynamicStableScale: stable shrink written → removed pods' servers stopped (preStop sleep {PRESTOP_SLEEP}s)"
    ] = f"{first_stop - shrank:.2f}s"
    FIGURES["dynamicStableScale: Traefik dropping the removed pods → their servers stopped"] = (
        f"{first_stop - dropped:.2f}s (preStop sleep {PRESTOP_SLEEP}s)"
    )
    FIGURES["dynamicStableScale: failed requests from the route at 50% to Traefik serving the shrunk stable"] = (
        f"{sum(shrink_errors.values())} of {len(shrinking)}"
    )
    FIGURES[f"dynamicStableScale: live share of the canary at 50%, and while the abort waits ({SAMPLE} requests)"] = (
        f"{measured:.3f}, {held_share:.3f}"
    )
    FIGURES["dynamicStableScale: status.weights.canary from the abort on (time from the stable's pods let in)"] = (
        sequence
    )
    FIGURES["dynamicStableScale: stable's pods let in → 4/4 available / route at 0% / last answer from the canary"] = (
        f"{ready_again - released:.2f}s / {zero - released:.2f}s / {last_new - released:.2f}s"
    )
    FIGURES[f"dynamicStableScale: route at 0% → canary scaled to 0 (abortScaleDownDelaySeconds {ABORT_DELAY})"] = (
        f"{scaled - zero:.2f}s"
    )
    FIGURES["dynamicStableScale: failed requests from the abort on"] = f"{len(failed)} of {len(since_abort)}"
