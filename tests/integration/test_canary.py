"""Canary rollouts end to end on the real control plane, for every traffic router.

Routing objects are validated by the real Gateway API, Istio and Traefik CRD schemas installed in the test
apiserver; no data plane runs here, so the tests assert the objects' contents at each step (live traffic
through a real Traefik is test_live_traffic.py).
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import get_json, wait_for
from tests.integration.helpers import (
    apply,
    condition,
    healthy,
    kubectl_apply,
    md,
    plugin,
    replicas_by_revision,
    sample,
    start_canary,
    wait_events,
    wait_status,
    with_version,
)

WALK = [
    {"setWeight": 5},
    {"pause": {}},
    {"setWeight": 25},
    {"pause": {}},
    {"setWeight": 50},
    {"pause": {}},
    {"setWeight": 100},
]
ROUTING = {
    "gatewayAPI": {
        "gatewayAPI": {"parentRefs": [{"name": "public", "namespace": "gateways"}], "hostnames": ["fraud.example.com"]}
    },
    "istio": {"istio": {"hosts": ["fraud.example.com"], "gateways": ["gateways/public"]}},
    "nginx": {"nginx": {"host": "fraud.example.com"}},
    "traefik": {"traefik": {"entryPoints": ["web"], "match": "Host(`fraud.example.com`)"}},
    "none": {},
}


def routed_weights(control_plane, namespace: str, router: str) -> tuple[int, int] | None:
    """(stable, canary) as the routing object says, or None where there is no routing object."""
    if router == "gatewayAPI":
        route = get_json(control_plane, "httproute", "fraud-scorer", "-n", namespace)
        refs = route["spec"]["rules"][0]["backendRefs"]
        assert [ref["name"] for ref in refs] == ["fraud-scorer-stable", "fraud-scorer-canary"]
        return refs[0]["weight"], refs[1]["weight"]
    if router == "istio":
        service = get_json(control_plane, "virtualservice", "fraud-scorer", "-n", namespace)
        routes = service["spec"]["http"][0]["route"]
        assert routes[0]["destination"]["host"] == f"fraud-scorer-stable.{namespace}.svc.cluster.local"
        return routes[0]["weight"], routes[1]["weight"]
    if router == "nginx":
        canary = get_json(control_plane, "ingress", "fraud-scorer-canary", "-n", namespace)
        annotations = canary["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/canary"] == "true"
        weight = int(annotations["nginx.ingress.kubernetes.io/canary-weight"])
        stable = get_json(control_plane, "ingress", "fraud-scorer", "-n", namespace)
        assert stable["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "fraud-scorer-stable"
        return 100 - weight, weight
    if router == "traefik":
        split = get_json(control_plane, "traefikservice", "fraud-scorer-split", "-n", namespace)
        services = split["spec"]["weighted"]["services"]
        assert [service["name"] for service in services] == ["fraud-scorer-stable", "fraud-scorer-canary"]
        entry = get_json(control_plane, "ingressroute", "fraud-scorer", "-n", namespace)
        assert entry["spec"]["routes"][0]["services"] == [{"name": "fraud-scorer", "kind": "TraefikService"}]
        return services[0]["weight"], services[1]["weight"]
    return None


def deployment_tracks(control_plane, namespace: str) -> dict[str, str]:
    """Track labels of the Deployments (one per revision), by revision."""
    items = get_json(control_plane, "deployments", "-n", namespace, "-l", "modelrollout.io/deployment=fraud-scorer")
    return {
        item["metadata"]["labels"]["modelrollout.io/revision"]: item["metadata"]["labels"].get("modelrollout.io/track")
        for item in items["items"]
    }


def pod_uids(control_plane, namespace: str, revision: str) -> set[str]:
    pods = get_json(control_plane, "pods", "-n", namespace, "-l", f"modelrollout.io/revision={revision}")["items"]
    return {pod["metadata"]["uid"] for pod in pods if not pod["metadata"].get("deletionTimestamp")}


def service_revision(control_plane, namespace: str, name: str) -> str:
    return get_json(control_plane, "service", name, "-n", namespace)["spec"]["selector"]["modelrollout.io/revision"]


@pytest.mark.parametrize("router", list(ROUTING))
def test_template_change_walks_every_weight_through_the_router(control_plane, operator, namespace, router):
    strategy = {"canary": {"steps": WALK, "scaleDownDelaySeconds": 5}}
    first = sample(replicas=4, strategy=strategy, trafficRouting=ROUTING[router])
    assert apply(control_plane, namespace, first).returncode == 0
    old = wait_for(lambda: healthy(control_plane, namespace), what="first Ready")["status"]["stableRevision"]
    if router != "none":
        assert routed_weights(control_plane, namespace, router) == (100, 0)

    assert apply(control_plane, namespace, with_version(first, "2026-11-27")).returncode == 0
    for weight, canary_pods in ((5, 1), (25, 1), (50, 2)):
        body = wait_status(
            control_plane,
            namespace,
            # Without a router the reported share follows the pods: it reaches the step's share once the
            # stable has given up the pod the canary now serves (in the reconcile after the step completes).
            lambda s, w=weight, c=canary_pods: (
                s["phase"] == "Paused" and s["weights"]["canary"] == (round(100 * c / 4) if router == "none" else w)
            ),
            f"paused after setWeight {weight}",
        )
        new = body["status"]["canaryRevision"]
        assert body["status"]["stableRevision"] == old
        replicas = replicas_by_revision(control_plane, namespace)
        assert replicas[new] == canary_pods
        if router == "none":
            # Replica ratio: the stable gives up exactly the pods the canary serves.
            assert replicas[old] == 4 - canary_pods
            assert body["status"]["weights"]["canary"] == round(100 * canary_pods / 4)
        else:
            assert replicas[old] == 4
            assert routed_weights(control_plane, namespace, router) == (100 - weight, weight)
            assert body["status"]["weights"] == {"stable": 100 - weight, "canary": weight, "mirror": 0}
            assert service_revision(control_plane, namespace, "fraud-scorer-canary") == new
            assert service_revision(control_plane, namespace, "fraud-scorer-stable") == old
        assert condition(body, "Paused")["status"] == "True"
        assert deployment_tracks(control_plane, namespace) == {old: "stable", new: "canary"}
        canary_pods = pod_uids(control_plane, namespace, new)
        promoted = plugin(control_plane, "promote", "fraud-scorer", "-n", namespace)
        assert promoted.returncode == 0, promoted.stderr

    done = wait_status(
        control_plane,
        namespace,
        lambda s: s["stableRevision"] != old and s["phase"] == "Healthy",
        "the new revision promoted",
    )
    new = done["status"]["stableRevision"]
    replicas = replicas_by_revision(control_plane, namespace)
    assert replicas[new] == 4
    if router != "none":
        # Traffic has left the old revision; its pods wait out scaleDownDelaySeconds before going.
        assert routed_weights(control_plane, namespace, router) == (100, 0)
        assert service_revision(control_plane, namespace, "fraud-scorer-stable") == new
        assert replicas[old] == 4
        assert [entry["revision"] for entry in done["status"]["scaleDowns"]] == [old]
    wait_for(lambda: replicas_by_revision(control_plane, namespace)[old] == 0, what="old revision scaled down")
    # Promotion is a selector write per Service: the canary's pods become the stable ones as they are,
    # without a restart, and no pod is written (they carry their revision from the template).
    assert deployment_tracks(control_plane, namespace)[new] == "stable"
    assert canary_pods and canary_pods <= pod_uids(control_plane, namespace, new)
    pods = get_json(control_plane, "pods", "-n", namespace, "-l", f"modelrollout.io/revision={new}")["items"]
    assert all("modelrollout.io/track" not in pod["metadata"]["labels"] for pod in pods)
    assert md(control_plane, namespace)["metadata"]["generation"] == 2  # the operator never wrote the spec
    recorded = wait_events(control_plane, namespace, "RolloutStarted", "StepCompleted", "ManualPromote", "Promoted")
    assert "by " in next(event["note"] for event in recorded if event["reason"] == "ManualPromote")


def test_abort_returns_traffic_to_stable_and_retry_restarts(control_plane, operator, namespace):
    strategy = {"canary": {"steps": WALK, "abortScaleDownDelaySeconds": 2}}
    first = sample(replicas=4, strategy=strategy, trafficRouting=ROUTING["gatewayAPI"])
    assert apply(control_plane, namespace, first).returncode == 0
    old = wait_for(lambda: healthy(control_plane, namespace), what="first Ready")["status"]["stableRevision"]
    assert apply(control_plane, namespace, with_version(first, "2026-11-27")).returncode == 0
    paused = wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", "paused at 5%")
    new = paused["status"]["canaryRevision"]

    aborted = plugin(control_plane, "abort", "fraud-scorer", "-n", namespace)
    assert aborted.returncode == 0, aborted.stderr
    assert f"revision {new} aborted" in aborted.stdout
    body = wait_status(control_plane, namespace, lambda s: s["phase"] == "Degraded", "Degraded after abort")
    assert routed_weights(control_plane, namespace, "gatewayAPI") == (100, 0)
    assert body["status"]["abort"]["reason"] == "Aborted"
    assert body["status"]["abort"]["actor"] == "admin"  # from SelfSubjectReview, not typed by hand
    assert condition(body, "Stalled")["status"] == "True"
    assert "retry" in body["status"]["message"]
    wait_for(lambda: replicas_by_revision(control_plane, namespace)[new] == 0, what="canary scaled down")
    assert replicas_by_revision(control_plane, namespace)[old] == 4

    retried = plugin(control_plane, "retry", "fraud-scorer", "-n", namespace)
    assert retried.returncode == 0, retried.stderr
    body = wait_status(
        control_plane, namespace, lambda s: s["phase"] == "Paused" and s["canaryRevision"] == new, "paused at 5% again"
    )
    assert "abort" not in body["status"]  # cleared by the retry
    assert routed_weights(control_plane, namespace, "gatewayAPI") == (95, 5)
    history = [entry["action"] for entry in body["status"]["history"]]
    assert history.count("RolloutStarted") == 2 and "abort" in history and "retry" in history


def test_rejected_action_exits_non_zero_with_the_reason(control_plane, operator, namespace):
    assert apply(control_plane, namespace, sample()).returncode == 0
    wait_for(lambda: healthy(control_plane, namespace), what="Ready")
    result = plugin(control_plane, "promote", "fraud-scorer", "-n", namespace)
    assert result.returncode == 1
    assert "no rollout in progress" in result.stderr
    assert md(control_plane, namespace)["status"]["lastRequest"]["accepted"] is False


def test_undo_rolls_back_to_the_previous_revision_without_steps(control_plane, operator, namespace):
    strategy = {"canary": {"steps": WALK, "scaleDownDelaySeconds": 1}}
    first = sample(replicas=3, strategy=strategy, trafficRouting=ROUTING["istio"])
    assert apply(control_plane, namespace, first).returncode == 0
    original = wait_for(lambda: healthy(control_plane, namespace), what="first Ready")["status"]["stableRevision"]
    assert apply(control_plane, namespace, with_version(first, "2026-11-27")).returncode == 0
    wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", "paused at 5%")
    assert plugin(control_plane, "promote", "--full", "fraud-scorer", "-n", namespace).returncode == 0
    second = wait_status(
        control_plane,
        namespace,
        lambda s: s["phase"] == "Healthy" and s["stableRevision"] != original,
        "second revision stable",
    )["status"]["stableRevision"]
    wait_for(lambda: replicas_by_revision(control_plane, namespace)[original] == 0, what="first revision at zero")

    history = plugin(control_plane, "history", "fraud-scorer", "-n", namespace)
    assert original in history.stdout and second in history.stdout and "promote-full" in history.stdout

    undone = plugin(control_plane, "undo", "fraud-scorer", "-n", namespace)
    assert undone.returncode == 0, undone.stderr
    body = wait_status(control_plane, namespace, lambda s: s["stableRevision"] == original, "rolled back")
    assert body["status"]["phase"] == "Degraded"
    assert body["status"]["abort"]["reason"] == "RolledBack" and body["status"]["abort"]["revision"] == second
    assert routed_weights(control_plane, namespace, "istio") == (100, 0)
    assert service_revision(control_plane, namespace, "fraud-scorer-stable") == original
    actions = [entry["action"] for entry in body["status"]["history"]]
    assert actions.count("RolloutStarted") == 1  # no steps were re-run
    wait_for(lambda: replicas_by_revision(control_plane, namespace)[second] == 0, what="undone revision scaled down")


def test_a_new_revision_mid_rollout_supersedes_the_canary(control_plane, operator, namespace):
    first = sample(
        replicas=2,
        strategy={"canary": {"steps": WALK, "abortScaleDownDelaySeconds": 1}},
        trafficRouting=ROUTING["gatewayAPI"],
    )
    stable, second = start_canary(control_plane, namespace, first)
    assert apply(control_plane, namespace, with_version(first, "v3")).returncode == 0
    body = wait_status(
        control_plane, namespace, lambda s: s["phase"] == "Paused" and s["canaryRevision"] != second, "v3 at 5%"
    )
    assert body["status"]["stableRevision"] == stable
    third = body["status"]["canaryRevision"]
    assert service_revision(control_plane, namespace, "fraud-scorer-canary") == third
    wait_for(lambda: replicas_by_revision(control_plane, namespace)[second] == 0, what="v2 scaled down")
    assert replicas_by_revision(control_plane, namespace)[stable] == 2
    (superseded,) = [e for e in wait_events(control_plane, namespace, "Superseded") if e["reason"] == "Superseded"]
    assert third in superseded["note"]


def test_going_back_to_the_stable_template_aborts_at_once(control_plane, operator, namespace):
    first = sample(
        replicas=2,
        strategy={"canary": {"steps": WALK, "abortScaleDownDelaySeconds": 1}},
        trafficRouting=ROUTING["nginx"],
    )
    stable, canary = start_canary(control_plane, namespace, first)
    assert apply(control_plane, namespace, first).returncode == 0
    body = wait_status(control_plane, namespace, lambda s: s["phase"] == "Healthy", "back on stable")
    assert body["status"]["stableRevision"] == stable and body["status"]["canaryRevision"] == ""
    assert routed_weights(control_plane, namespace, "nginx") == (100, 0)
    wait_for(lambda: replicas_by_revision(control_plane, namespace)[canary] == 0, what="canary scaled down")


def test_a_canary_that_never_becomes_ready_ends_degraded(control_plane, operator, namespace):
    first = sample(
        replicas=2,
        progressDeadlineSeconds=5,
        strategy={"canary": {"steps": WALK}},
        trafficRouting=ROUTING["gatewayAPI"],
    )
    assert apply(control_plane, namespace, first).returncode == 0
    stable = wait_for(lambda: healthy(control_plane, namespace), what="first Ready")["status"]["stableRevision"]
    broken = with_version(first, "v2")
    broken["spec"]["template"]["spec"]["nodeSelector"] = {"no-such-node": "anywhere"}
    assert apply(control_plane, namespace, broken).returncode == 0
    body = wait_status(control_plane, namespace, lambda s: s["phase"] == "Degraded", "Degraded", timeout=120)
    assert body["status"]["abort"]["reason"] == "ProgressDeadlineExceeded"
    assert body["status"]["stableRevision"] == stable
    assert routed_weights(control_plane, namespace, "gatewayAPI") == (100, 0)
    assert condition(body, "Stalled")["status"] == "True"


def test_pause_and_resume_hold_a_timed_step(control_plane, operator, namespace):
    steps = [{"setWeight": 10}, {"pause": {"duration": "2s"}}, {"setWeight": 20}, {"pause": {}}]
    first = sample(replicas=2, strategy={"canary": {"steps": steps}}, trafficRouting=ROUTING["istio"])
    assert apply(control_plane, namespace, first).returncode == 0
    wait_for(lambda: healthy(control_plane, namespace), what="first Ready")
    assert apply(control_plane, namespace, with_version(first, "v2")).returncode == 0
    wait_status(control_plane, namespace, lambda s: s["weights"]["canary"] == 10, "weight 10")
    paused = plugin(control_plane, "pause", "fraud-scorer", "-n", namespace)
    assert paused.returncode == 0, paused.stderr
    body = wait_status(control_plane, namespace, lambda s: s["phase"] == "Paused", "paused by a person")
    assert "paused by admin" in body["status"]["message"]
    assert body["status"]["currentStepIndex"] == 1
    assert plugin(control_plane, "resume", "fraud-scorer", "-n", namespace).returncode == 0
    wait_status(
        control_plane,
        namespace,
        lambda s: s["weights"]["canary"] == 20 and s["phase"] == "Paused",
        "weight 20 after resume",
    )


def test_set_canary_scale_warms_pods_before_traffic_and_keeps_them_through_a_small_weight(
    control_plane, operator, namespace
):
    steps = [{"setCanaryScale": {"replicas": 2}}, {"pause": {}}, {"setWeight": 25}, {"pause": {}}]
    first = sample(replicas=4, strategy={"canary": {"steps": steps}}, trafficRouting=ROUTING["gatewayAPI"])
    stable, new = start_canary(control_plane, namespace, first)
    wait_for(lambda: replicas_by_revision(control_plane, namespace).get(new) == 2, what="2 warm canary pods")
    assert routed_weights(control_plane, namespace, "gatewayAPI") == (100, 0)  # warm, and no traffic yet
    promoted = plugin(control_plane, "promote", "fraud-scorer", "-n", namespace)
    assert promoted.returncode == 0, promoted.stderr
    at_25 = wait_status(control_plane, namespace, lambda s: s["weights"]["canary"] == 25, "25% on warm pods")
    assert at_25["status"]["intent"]["canaryScale"] == {"replicas": 2}
    assert routed_weights(control_plane, namespace, "gatewayAPI") == (75, 25)
    assert replicas_by_revision(control_plane, namespace) == {stable: 4, new: 2}  # 1 pod would carry 25%
    shown = plugin(control_plane, "status", "fraud-scorer", "-n", namespace).stdout
    assert "Pods:        stable 4/4 available, canary 2/2 available, canary scaled to 2 pods (setCanaryScale)" in shown


def test_a_real_hpa_scales_the_model_deployment_and_the_canary_keeps_its_share(control_plane, operator, namespace):
    """The controller-manager's own HPA controller writes the ModelDeployment's scale subresource (here to
    its minReplicas: kwok pods have no CPU metrics); the canary follows as its share of the new size."""
    steps = [{"setWeight": 25}, {"pause": {}}]
    first = sample(replicas=4, strategy={"canary": {"steps": steps}}, trafficRouting=ROUTING["gatewayAPI"])
    stable, new = start_canary(control_plane, namespace, first)
    wait_status(control_plane, namespace, lambda s: s["weights"]["canary"] == 25, "25% on the canary")
    assert replicas_by_revision(control_plane, namespace) == {stable: 4, new: 1}
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "fraud-scorer"},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "modelrollout.io/v1alpha1",
                "kind": "ModelDeployment",
                "name": "fraud-scorer",
            },
            "minReplicas": 8,
            "maxReplicas": 12,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }
    kubectl_apply(control_plane, namespace, hpa)
    wait_for(
        lambda: replicas_by_revision(control_plane, namespace) == {stable: 8, new: 2},
        timeout=90,
        what="the HPA's 8 replicas: the stable at 8, the canary at 2 (25% of 8)",
    )
    body = md(control_plane, namespace)
    assert body["spec"]["replicas"] == 8 and body["status"]["phase"] == "Paused"
    assert body["status"]["currentStepIndex"] == 1
    assert routed_weights(control_plane, namespace, "gatewayAPI") == (75, 25)
    promoted = plugin(control_plane, "promote", "fraud-scorer", "-n", namespace)
    assert promoted.returncode == 0, promoted.stderr
    done = wait_status(
        control_plane, namespace, lambda s: s["phase"] == "Healthy" and s["stableRevision"] == new, "promoted"
    )
    assert replicas_by_revision(control_plane, namespace)[new] == 8 and done["spec"]["replicas"] == 8
