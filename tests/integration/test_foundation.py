"""The foundation on a real control plane: a ModelDeployment becomes a serving Deployment and Service."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import REPO, get_json, wait_for
from tests.integration.helpers import SAMPLE, apply, condition, healthy, md, owned_deployments, sample, wait_events


def test_sample_becomes_ready_with_pods_service_and_kubectl_wait(control_plane, operator, namespace):
    result = control_plane.kubectl("apply", "-n", namespace, "-f", str(SAMPLE))
    assert "modeldeployment.modelrollout.io/fraud-scorer created" in result.stdout

    waited = control_plane.kubectl(
        "wait",
        "--for=condition=Ready",
        "modeldeployment/fraud-scorer",
        "-n",
        namespace,
        "--timeout=120s",
        check=False,
    )
    assert waited.returncode == 0, waited.stderr
    assert "condition met" in waited.stdout

    body = md(control_plane, namespace)
    status = body["status"]
    revision = status["stableRevision"]
    assert status["phase"] == "Healthy"
    assert status["observedGeneration"] == body["metadata"]["generation"]
    assert status["currentRevision"] == revision
    assert status["readyReplicas"] == 3
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
        "Progressing": "False",
        "Paused": "False",
        "Degraded": "False",
    }

    (deployment,) = owned_deployments(control_plane, namespace)
    assert deployment["metadata"]["name"] == f"fraud-scorer-{revision}"
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
    pods = get_json(control_plane, "pods", "-n", namespace, "-l", f"modelrollout.io/revision={revision}")["items"]
    assert len(pods) == 3
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])
        assert pod["metadata"]["labels"]["modelrollout.io/model-version"] == "2026-11-20"

    service = get_json(control_plane, "service", "fraud-scorer", "-n", namespace)
    # No router and no rollout: the Service selects the stable revision (it spans revisions only while a
    # canary is in its steps, so an abort or a promotion moves all traffic in one selector write).
    assert service["spec"]["selector"] == {
        "modelrollout.io/deployment": "fraud-scorer",
        "modelrollout.io/revision": revision,
    }
    assert service["spec"]["ports"][0]["port"] == 80
    assert service["spec"]["ports"][0]["targetPort"] == "http"

    printed = control_plane.kubectl("get", "md", "fraud-scorer", "-n", namespace).stdout
    assert "Healthy" in printed and revision in printed and "2026-11-20" in printed

    (ready,) = [event for event in wait_events(control_plane, namespace, "Healthy") if event["reason"] == "Healthy"]
    assert ready["regarding"]["kind"] == "ModelDeployment"


def test_replicas_only_change_keeps_the_revision(control_plane, operator, namespace):
    assert apply(control_plane, namespace, sample()).returncode == 0
    before = wait_for(lambda: healthy(control_plane, namespace), what="first Ready")
    revision = before["status"]["stableRevision"]

    control_plane.kubectl("scale", "modeldeployment/fraud-scorer", "-n", namespace, "--replicas=5")

    def scaled():
        body = healthy(control_plane, namespace)
        return body if body and body["status"]["readyReplicas"] == 5 else None

    after = wait_for(scaled, what="5 ready replicas")
    assert after["status"]["stableRevision"] == revision
    assert after["status"]["canaryRevision"] == ""
    (deployment,) = owned_deployments(control_plane, namespace)
    assert deployment["spec"]["replicas"] == 5
    assert deployment["metadata"]["name"] == f"fraud-scorer-{revision}"


def test_new_model_version_replaces_the_revision_without_dropping_the_stable(control_plane, operator, namespace):
    one_step = {"canary": {"steps": [{"setWeight": 100}], "scaleDownDelaySeconds": 0}}
    assert apply(control_plane, namespace, sample(strategy=one_step)).returncode == 0
    first = wait_for(lambda: healthy(control_plane, namespace), what="first Ready")
    old = first["status"]["stableRevision"]

    newer = sample(strategy=one_step, model={"name": "fraud-scorer", "version": "2026-11-27"})
    assert apply(control_plane, namespace, newer).returncode == 0

    def promoted():
        body = healthy(control_plane, namespace)
        return body if body and body["status"]["stableRevision"] != old else None

    after = wait_for(promoted, what="the new revision to become stable")
    new = after["status"]["stableRevision"]
    deployments = {d["metadata"]["name"]: d["spec"]["replicas"] for d in owned_deployments(control_plane, namespace)}
    assert deployments == {f"fraud-scorer-{new}": 3, f"fraud-scorer-{old}": 0}
    assert after["status"]["weights"] == {"stable": 100, "canary": 0, "mirror": 0}


def test_deleting_the_modeldeployment_removes_its_children(control_plane, operator, namespace):
    assert apply(control_plane, namespace, sample()).returncode == 0
    wait_for(lambda: healthy(control_plane, namespace), what="Ready")
    control_plane.kubectl("delete", "modeldeployment", "fraud-scorer", "-n", namespace, "--wait=true", "--timeout=60s")

    def children_gone():
        deployments = owned_deployments(control_plane, namespace)
        services = get_json(
            control_plane, "services", "-n", namespace, "-l", "modelrollout.io/deployment=fraud-scorer"
        )["items"]
        pods = get_json(control_plane, "pods", "-n", namespace, "-l", "modelrollout.io/deployment=fraud-scorer")[
            "items"
        ]
        return not deployments and not services and not pods

    wait_for(children_gone, what="garbage collection of the children")


def test_pods_that_never_schedule_end_in_a_clear_stalled_state(control_plane, operator, namespace):
    unschedulable = sample(progressDeadlineSeconds=5)
    unschedulable["spec"]["template"]["spec"]["nodeSelector"] = {"no-such-node": "anywhere"}
    assert apply(control_plane, namespace, unschedulable).returncode == 0

    def stalled():
        body = md(control_plane, namespace)
        return body if condition(body, "Stalled").get("status") == "True" else None

    body = wait_for(stalled, what="Stalled=True")
    assert body["status"]["phase"] == "Degraded"
    assert condition(body, "Stalled")["reason"] == "ProgressDeadlineExceeded"
    assert condition(body, "Ready")["status"] == "False"
    assert "0/3 pods ready" in body["status"]["message"]


def test_a_template_the_apiserver_rejects_is_reported_not_retried_silently(control_plane, operator, namespace):
    bad = sample()
    bad["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 99999}]
    assert apply(control_plane, namespace, bad).returncode == 0

    def stalled():
        body = md(control_plane, namespace)
        return body if condition(body, "Stalled").get("reason") == "InvalidSpec" else None

    body = wait_for(stalled, what="Stalled=InvalidSpec")
    assert "containerPort" in body["status"]["message"]
    assert body["status"]["phase"] == "Degraded"
    recorded = wait_events(control_plane, namespace, "InvalidSpec")
    warnings = [event for event in recorded if event["type"] == "Warning" and event["reason"] == "InvalidSpec"]
    assert warnings and "containerPort" in warnings[0]["note"]


def test_sample_manifests_are_valid(control_plane, namespace):
    for path in sorted(Path(REPO / "manifests" / "samples").glob("*.yaml")):
        result = control_plane.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False)
        assert result.returncode == 0, f"{path.name}: {result.stderr}"
