"""Faults: the stable model keeps serving and nothing is lost when Prometheus, the apiserver or the operator
fail mid-rollout, when edits conflict, or when the ModelDeployment is deleted mid-rollout."""

from __future__ import annotations

import threading

import pytest

from modelrollout.simulator.exporter import Behaviour
from tests.integration.conftest import get_json, running_operator, wait_for
from tests.integration.helpers import (
    apply,
    healthy,
    kubectl_apply,
    md,
    owned_deployments,
    plugin,
    replicas_by_revision,
    revision_of,
    route_weights,
    sample,
    start_canary,
    template,
    wait_status,
    with_version,
)

PAUSES = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}, {"setWeight": 100}]


def routed(replicas=2, steps=None, **spec) -> dict:
    return sample(
        replicas=replicas,
        strategy={"canary": {"steps": steps or PAUSES, "scaleDownDelaySeconds": 1, "abortScaleDownDelaySeconds": 1}},
        trafficRouting={"gatewayAPI": {"parentRefs": [{"name": "public"}]}},
        **spec,
    )


def test_prometheus_outage_mid_analysis_neither_promotes_nor_rolls_back(control_plane, operator, monitoring, namespace):
    # inconclusiveLimit tolerates the no-data gap a restarted Prometheus leaves in its rate windows.
    checks = template("error-rate", count=6, consecutiveErrorLimit=60, inconclusiveLimit=10)
    kubectl_apply(control_plane, namespace, checks)
    steps = [
        {"setWeight": 20},
        {
            "analysis": {
                "templates": [{"name": "error-rate"}],
                "args": [{"name": "prometheus", "value": monitoring.prometheus.url}],
            }
        },
        {"setWeight": 100},
    ]
    first = routed(steps=steps)
    for body in (first, with_version(first, "v2")):
        monitoring.simulator.set(namespace, revision_of(body), Behaviour())
    assert apply(control_plane, namespace, first).returncode == 0
    stable = wait_for(lambda: healthy(control_plane, namespace), what="first Ready")["status"]["stableRevision"]
    assert apply(control_plane, namespace, with_version(first, "v2")).returncode == 0

    def measured(kind: str, at_least: int):
        def check(status):
            runs = status.get("analysisRuns") or []
            return runs and runs[0]["metrics"] and runs[0]["metrics"][0].get(kind, 0) >= at_least

        return check

    wait_status(control_plane, namespace, measured("successful", 1), "a first successful measurement")
    monitoring.prometheus.process.stop()
    try:
        during = wait_status(control_plane, namespace, measured("consecutiveErrors", 3), "errors during the outage")
        assert during["status"]["phase"] == "Progressing"
        assert during["status"]["stableRevision"] == stable and during["status"].get("abort") is None
        assert route_weights(control_plane, namespace) == [80, 20]
    finally:
        monitoring.prometheus.restart()
    done = wait_status(
        control_plane,
        namespace,
        lambda s: s["phase"] == "Healthy" and s["stableRevision"] != stable,
        "promoted once Prometheus is back",
        timeout=120,
    )
    (metric,) = done["status"]["analysisRuns"][0]["metrics"]
    assert metric["errors"] >= 3 and metric["successful"] == 6 and metric["consecutiveErrors"] == 0


def test_apiserver_restart_mid_rollout_the_operator_reconnects(control_plane, operator, namespace):
    stable, canary = start_canary(control_plane, namespace, routed())
    control_plane.restart("kube-apiserver")
    promoted = plugin(control_plane, "promote", "fraud-scorer", "-n", namespace)
    assert promoted.returncode == 0, promoted.stderr
    body = wait_status(
        control_plane, namespace, lambda s: s["weights"]["canary"] == 60, "60% after the restart", timeout=120
    )
    assert body["status"]["stableRevision"] == stable
    assert route_weights(control_plane, namespace) == [40, 60]
    assert sorted(replicas_by_revision(control_plane, namespace)) == sorted([stable, canary])


def test_conflicting_edits_during_steps_lose_nothing_and_repeat_nothing(control_plane, operator, namespace):
    first = routed(
        steps=[
            {"setWeight": 20},
            {"pause": {"duration": "1s"}},
            {"setWeight": 50},
            {"pause": {"duration": "1s"}},
            {"setWeight": 100},
        ]
    )
    assert apply(control_plane, namespace, first).returncode == 0
    wait_for(lambda: healthy(control_plane, namespace), what="first Ready")
    stop = threading.Event()

    def edit_annotations():
        # Metadata edits bump resourceVersion without a new generation: the operator's status writes meet 409s.
        count = 0
        while not stop.is_set() and count < 400:
            control_plane.kubectl(
                "annotate", "md", "fraud-scorer", "-n", namespace, f"touch=n{count}", "--overwrite", check=False
            )
            count += 1

    editor = threading.Thread(target=edit_annotations)
    editor.start()
    try:
        assert apply(control_plane, namespace, with_version(first, "v2")).returncode == 0
        done = wait_status(
            control_plane,
            namespace,
            lambda s: s["phase"] == "Healthy" and s["stableRevision"] == revision_of(with_version(first, "v2")),
            "promoted despite conflicts",
            timeout=120,
        )
    finally:
        stop.set()
        editor.join()
    actions = [entry["action"] for entry in done["status"]["history"]]
    assert actions.count("RolloutStarted") == 1
    assert actions.count("StepCompleted") == 5
    assert actions.count("Promoted") == 1


def test_deleting_a_modeldeployment_mid_rollout_removes_everything(control_plane, operator, namespace):
    start_canary(control_plane, namespace, routed())
    assert len(owned_deployments(control_plane, namespace)) == 2
    control_plane.kubectl("delete", "md", "fraud-scorer", "-n", namespace, "--wait=true", "--timeout=60s")

    def all_gone():
        selector = "modelrollout.io/deployment=fraud-scorer"
        left = [
            *owned_deployments(control_plane, namespace),
            *get_json(control_plane, "services", "-n", namespace, "-l", selector)["items"],
            *get_json(control_plane, "pods", "-n", namespace, "-l", selector)["items"],
        ]
        return not left and get_json(control_plane, "httproute", "fraud-scorer", "-n", namespace) is None

    wait_for(all_gone, what="children and the HTTPRoute garbage-collected")


STOP_POINTS = {
    "waiting-for-canary-pods": lambda s: bool(s.get("canaryRevision")),
    "at-a-pause-for-a-person": lambda s: s["phase"] == "Paused",
    "right-after-promotion": lambda s: s["phase"] == "Healthy" and bool(s.get("scaleDowns")),
}


@pytest.mark.parametrize("stop_point", list(STOP_POINTS))
def test_operator_killed_at_any_phase_finishes_the_rollout_cleanly(control_plane, monitoring, namespace, stop_point):
    steps = [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]
    first = routed(replicas=3, steps=steps)
    first["spec"]["strategy"]["canary"]["scaleDownDelaySeconds"] = 3
    second = with_version(first, "v2")
    new = revision_of(second)
    with running_operator(monitoring.prometheus.url):
        assert apply(control_plane, namespace, first).returncode == 0
        old = wait_for(lambda: healthy(control_plane, namespace), what="first Ready")["status"]["stableRevision"]
        assert apply(control_plane, namespace, second).returncode == 0
        if stop_point == "right-after-promotion":
            wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", "at the pause")
            assert plugin(control_plane, "promote", "fraud-scorer", "-n", namespace).returncode == 0
        wait_status(control_plane, namespace, STOP_POINTS[stop_point], stop_point)
    # No operator: whatever was applied stays; traffic never points at pods that are not there.
    with running_operator(monitoring.prometheus.url):
        body = md(control_plane, namespace)
        if body["status"]["phase"] != "Healthy" or body["status"]["stableRevision"] != new:
            wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", "at the pause again")
            assert plugin(control_plane, "promote", "fraud-scorer", "-n", namespace).returncode == 0
        done = wait_status(
            control_plane,
            namespace,
            lambda s: s["phase"] == "Healthy" and s["stableRevision"] == new,
            "promoted by the new operator",
        )
        wait_for(lambda: replicas_by_revision(control_plane, namespace) == {new: 3, old: 0}, what="old scaled down")
    actions = [entry["action"] for entry in done["status"]["history"]]
    assert actions.count("RolloutStarted") == 1 and actions.count("Promoted") == 1
    names = sorted(d["metadata"]["name"] for d in owned_deployments(control_plane, namespace))
    assert names == sorted([f"fraud-scorer-{old}", f"fraud-scorer-{new}"])  # no duplicate, no orphan
    assert route_weights(control_plane, namespace) == [100, 0]
    assert done["metadata"]["generation"] == 2  # the operator never wrote the spec
