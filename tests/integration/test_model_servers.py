"""Real model servers for kwok pods: the harness serves each gated pod with MLServer on the pod's IP.

Runs inside the private network (pod IPs bindable); see the `model_servers` fixture.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.parse
import urllib.request

import pytest

from modelrollout.core.distributions import Histogram, psi
from modelrollout.modelserver import behaviour, loadgen, models
from modelrollout.modelserver.settings import READINESS_GATE, pod_template
from tests.conftest import FIGURES
from tests.integration.conftest import get_json, wait_for

MODEL = "fraud-scorer"
START = 240.0  # MLServer starts in 5-13 s alone; several at once on 2 busy cores take longer


def deployment(name: str, version: str, behaviour_name: str, replicas: int) -> dict:
    labels = {"app": name, "modelrollout.io/revision": f"{name}-rev", "modelrollout.io/model-version": version}
    template = pod_template(MODEL, version, behaviour_name, labels=labels)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template},
    }


def apply(control_plane, namespace: str, body: dict) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))


def pods(control_plane, namespace: str, app: str) -> list[dict]:
    listed = get_json(control_plane, "pods", "-n", namespace, "-l", f"app={app}")
    return [pod for pod in (listed or {}).get("items", []) if not pod["metadata"].get("deletionTimestamp")]


def condition(pod: dict, kind: str) -> dict:
    return next((c for c in pod["status"].get("conditions", []) if c["type"] == kind), {})


def is_ready(pod: dict) -> bool:
    return condition(pod, "Ready").get("status") == "True"


def server_answers(ip: str, port: int = 8080) -> bool:
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/v2/health/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_ready_pods(control_plane, namespace: str, app: str, count: int) -> list[dict]:
    """Wait for `count` Ready pods, checking on every look that a Ready pod's server really answers."""
    unserved: list[str] = []

    def ready() -> list[dict] | None:
        found = pods(control_plane, namespace, app)
        ready_pods = [pod for pod in found if is_ready(pod)]
        for pod in ready_pods:
            if not server_answers(pod["status"]["podIP"]):
                unserved.append(f"{pod['metadata']['name']} ({pod['status']['podIP']})")
        return ready_pods if len(ready_pods) == count and len(found) == count else None

    found = wait_for(ready, timeout=START, what=f"{count} Ready pods of {app} with answering servers")
    assert unserved == [], f"pods seen Ready while nothing answered on their IP: {unserved}"
    return found


def prometheus_query(prometheus, query: str) -> list[dict]:
    url = f"{prometheus.url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)["data"]["result"]


@pytest.fixture(scope="module")
def dataset() -> models.Dataset:
    return models.load_dataset(models.ensure_models())


def test_gated_pod_waits_for_its_server_and_a_bad_template_is_named(control_plane, model_servers, namespace):
    body = deployment("bad", "2026-11-20", "no-such-behaviour", 1)
    apply(control_plane, namespace, body)

    def rejected() -> dict | None:
        found = pods(control_plane, namespace, "bad")
        return found[0] if found and condition(found[0], READINESS_GATE).get("status") == "False" else None

    pod = wait_for(rejected, timeout=60, what="the harness to reject the bad pod template")
    # kwok's gated Stage: Running with an IP and ContainersReady, but never Ready without the gate.
    assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"].startswith("10.244.")
    assert condition(pod, "ContainersReady")["status"] == "True"
    assert condition(pod, "Ready")["status"] == "False"
    assert "MODEL_BEHAVIOUR" in condition(pod, READINESS_GATE)["message"]
    assert f"{namespace}/{pod['metadata']['name']}" not in model_servers.servers()


def test_real_model_servers_serve_pods_answer_by_version_and_are_scraped(
    control_plane, model_servers, model_prometheus, namespace, dataset
):
    apply(control_plane, namespace, deployment("good", "2026-11-20", behaviour.GOOD, 2))
    apply(control_plane, namespace, deployment("hotfix", "2026-12-04", behaviour.HOTFIX_ERRORS, 1))
    apply(control_plane, namespace, deployment("shifted", "2026-12-01", behaviour.SHIFTED, 1))
    good = wait_ready_pods(control_plane, namespace, "good", 2)
    hotfix = wait_ready_pods(control_plane, namespace, "hotfix", 1)
    shifted = wait_ready_pods(control_plane, namespace, "shifted", 1)
    assert len({pod["status"]["podIP"] for pod in good + hotfix + shifted}) == 4
    settled = hotfix[0]["metadata"]["resourceVersion"]

    # Real inference on each pod's IP: every answer names the version its pod declared.
    row = dataset.rows[0]
    for pod in good:
        status, answer = loadgen.infer(f"http://{pod['status']['podIP']}:8080", MODEL, row)
        assert status == 200 and answer["model_version"] == "2026-11-20"
        assert 0.0 <= answer["outputs"][0]["data"][0] <= 1.0

    # The hotfix really fails, on exactly the rows its behaviour says (about 30% of the data set).
    hotfix_url = f"http://{hotfix[0]['status']['podIP']}:8080"
    rule = behaviour.parse(behaviour.HOTFIX_ERRORS)
    expected_failures = sum(rule.fails(r, dataset.feature_names) for r in dataset.rows)
    statuses = [loadgen.infer(hotfix_url, MODEL, r)[0] for r in dataset.rows]
    assert statuses.count(500) == expected_failures
    assert statuses.count(200) == len(dataset.rows) - expected_failures
    assert 0.2 < expected_failures / len(dataset.rows) < 0.4
    FIGURES["model servers: hotfix-errors 5xx ratio over the data set"] = (
        f"{statuses.count(500)}/{len(statuses)} = {statuses.count(500) / len(statuses):.3f}"
    )
    served = [info for info in model_servers.servers().values() if info.namespace == namespace]
    starts = sorted(info.start_seconds or 0.0 for info in served)
    FIGURES["model servers: MLServer start to ready, 4 at once (min-max)"] = f"{starts[0]:.1f}-{starts[-1]:.1f}s"

    # The shifted model really answers differently: every row once to it and to the second good pod, then
    # the PSI of their score histograms as Prometheus scraped them (the shadow check's own computation).
    for pod in (good[1], shifted[0]):
        url = f"http://{pod['status']['podIP']}:8080"
        assert {loadgen.infer(url, MODEL, r)[0] for r in dataset.rows} == {200}

    def histogram(pod: dict, observations: int) -> Histogram | None:
        query = (
            f'sum by (le) (model_prediction_score_bucket{{namespace="{namespace}",pod="{pod["metadata"]["name"]}"}})'
        )
        buckets = [(float(s["metric"]["le"]), float(s["value"][1])) for s in prometheus_query(model_prometheus, query)]
        found = Histogram.from_buckets(buckets) if buckets else None
        return found if found is not None and found.total == observations else None

    # The good pod also answered the first row above.
    rows = len(dataset.rows)
    good_scores = wait_for(lambda: histogram(good[1], rows + 1), timeout=60, what="the good pod's score histogram")
    shifted_scores = wait_for(lambda: histogram(shifted[0], rows), timeout=60, what="the shifted pod's score histogram")
    distance = psi(good_scores, shifted_scores)
    FIGURES["model servers: PSI of the shifted vs the good model's scores (whole data set)"] = f"{distance:.2f}"
    assert distance > 0.25

    # A steady load on one good pod: answered by its version only.
    with loadgen.LoadGenerator(f"http://{good[0]['status']['podIP']}:8080", MODEL, dataset.rows, rps=30) as load:
        wait_for(lambda: sum(load.snapshot().counts().values()) >= 60, timeout=60, what="60 answers")
    assert set(load.snapshot().counts()) == {("2026-11-20", 200)}

    # Prometheus discovers the pods through the apiserver and labels their series per revision.
    def scraped() -> bool:
        requests = prometheus_query(
            model_prometheus,
            f'sum by (status_code) (rest_server_requests_total{{namespace="{namespace}",revision="hotfix-rev",'
            f'path="/v2/models/{{model_name}}/infer"}})',
        )
        codes = {series["metric"].get("status_code") for series in requests}
        scores = prometheus_query(
            model_prometheus, f'sum(model_prediction_score_count{{namespace="{namespace}",revision="good-rev"}})'
        )
        feature = prometheus_query(
            model_prometheus,
            f'count(model_feature_mean_radius_bucket{{namespace="{namespace}",revision="good-rev",'
            f'model_version="2026-11-20"}})',
        )
        return codes == {"200", "500"} and scores and float(scores[0]["value"][1]) >= 60 and bool(feature)

    wait_for(scraped, timeout=60, what="Prometheus to scrape both revisions' model metrics")
    pods_scraped = prometheus_query(
        model_prometheus,
        f'count by (pod) (model_prediction_score_count{{namespace="{namespace}",revision="good-rev"}})',
    )
    assert {series["metric"]["pod"] for series in pods_scraped} == {pod["metadata"]["name"] for pod in good}
    # Neither kwok (no Stage matches a Running pod) nor the harness (state unchanged) wrote the pod since.
    assert pods(control_plane, namespace, "hotfix")[0]["metadata"]["resourceVersion"] == settled


def test_a_dead_server_makes_its_pod_unready_until_restarted(control_plane, model_servers, namespace):
    apply(control_plane, namespace, deployment("crash", "2026-11-20", behaviour.GOOD, 1))
    pod = wait_ready_pods(control_plane, namespace, "crash", 1)[0]
    key = f"{namespace}/{pod['metadata']['name']}"
    first = model_servers.servers()[key]
    assert first.pid is not None
    os.killpg(first.pid, signal.SIGKILL)

    def unready() -> bool:
        current = pods(control_plane, namespace, "crash")
        return bool(current) and condition(current[0], READINESS_GATE).get("status") == "False"

    wait_for(unready, timeout=60, what="the pod to turn not ready after its server died")
    assert not is_ready(pods(control_plane, namespace, "crash")[0])
    wait_ready_pods(control_plane, namespace, "crash", 1)
    assert model_servers.servers()[key].restarts == 1


def test_scaling_down_stops_the_server_of_the_pod_that_left(control_plane, model_servers, namespace):
    apply(control_plane, namespace, deployment("scaled", "2026-11-20", behaviour.SHIFTED, 2))
    before = wait_ready_pods(control_plane, namespace, "scaled", 2)
    scaled = time.monotonic()
    control_plane.kubectl("scale", "deployment/scaled", "-n", namespace, "--replicas=1")
    remaining = wait_ready_pods(control_plane, namespace, "scaled", 1)[0]
    left = next(pod for pod in before if pod["metadata"]["uid"] != remaining["metadata"]["uid"])
    left_key = f"{namespace}/{left['metadata']['name']}"
    stopped = wait_for(
        lambda: model_servers.stopped_at().get(left_key), timeout=60, what="the harness to stop the pod that left"
    )
    # It is no longer served, it stopped after the scale-down, and the pod that stays was never stopped.
    assert left_key not in model_servers.servers() and stopped > scaled, (model_servers.servers(), stopped, scaled)
    assert f"{namespace}/{remaining['metadata']['name']}" not in model_servers.stopped_at()

    def refused() -> bool:
        with socket.socket() as probe:
            probe.settimeout(2)
            return probe.connect_ex((left["status"]["podIP"], 8080)) != 0

    # Nothing listens on the IP of the pod that left (no other gated pod is created meanwhile, so no new
    # server can have taken the freed IP).
    wait_for(refused, timeout=30, what="the stopped server's port to close")
    served = [info for key, info in model_servers.servers().items() if key.startswith(f"{namespace}/scaled-")]
    assert [info.pod for info in served] == [remaining["metadata"]["name"]]
