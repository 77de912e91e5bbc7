"""Blue/green on the real control plane: a preview Service, one selector write to switch, and back.

A `kubectl get -w` on the active Service records every version the apiserver stored, so the tests
can assert how many writes switched it, not just where it ended.
"""

from __future__ import annotations

from modelrollout.simulator.exporter import Behaviour
from tests.integration.conftest import get_json, wait_for
from tests.integration.helpers import (
    NEXT_VERSION,
    apply,
    healthy,
    kubectl_apply,
    object_versions,
    plugin,
    replicas_by_revision,
    revision_of,
    sample,
    template,
    wait_status,
    with_version,
)

REVISION = "modelrollout.io/revision"


def blue_green(**fields) -> dict:
    settings = {"previewReplicas": 1, "scaleDownDelaySeconds": 2, "abortScaleDownDelaySeconds": 1, **fields}
    return sample(replicas=3, strategy={"blueGreen": settings})


def service_versions(control_plane, namespace: str, name: str):
    return object_versions(control_plane, namespace, "service", name)


def selected(versions: list[dict]) -> list[str]:
    """The revision each stored version selects, with repeats of the same resourceVersion dropped."""
    seen, revisions = set(), []
    for body in versions:
        if body["metadata"]["resourceVersion"] in seen:
            continue
        seen.add(body["metadata"]["resourceVersion"])
        revisions.append(body["spec"]["selector"].get(REVISION, "<all>"))
    return revisions


def transitions(revisions: list[str]) -> list[str]:
    return [revision for i, revision in enumerate(revisions) if i == 0 or revisions[i - 1] != revision]


def selector_of(control_plane, namespace: str, name: str) -> str:
    return get_json(control_plane, "service", name, "-n", namespace)["spec"]["selector"][REVISION]


def test_a_person_promotes_and_the_active_service_switches_in_one_write(control_plane, operator, namespace):
    body = blue_green()
    stable, new = revision_of(body), revision_of(with_version(body, NEXT_VERSION))
    assert apply(control_plane, namespace, body).returncode == 0
    wait_for(lambda: healthy(control_plane, namespace), what="first Ready")
    assert selector_of(control_plane, namespace, "fraud-scorer") == stable
    with service_versions(control_plane, namespace, "fraud-scorer") as versions:
        assert apply(control_plane, namespace, with_version(body, NEXT_VERSION)).returncode == 0
        waiting = wait_status(
            control_plane,
            namespace,
            lambda s: s["phase"] == "Paused" and s.get("stage") == "Preview",
            "preview waiting for a person",
        )["status"]
        assert waiting["pauseReasons"][0]["gate"] == "promotion"
        assert "no autoPromotionSeconds" in waiting["message"]
        assert replicas_by_revision(control_plane, namespace) == {stable: 3, new: 1}
        assert selector_of(control_plane, namespace, "fraud-scorer-preview") == new
        assert selector_of(control_plane, namespace, "fraud-scorer") == stable
        promoted = plugin(control_plane, "promote", "fraud-scorer", "-n", namespace)
        assert promoted.returncode == 0, promoted.stderr
        done = wait_status(
            control_plane,
            namespace,
            lambda s: s["phase"] == "Healthy" and not s.get("scaleDowns") and s["stableRevision"] == new,
            "promoted and the old revision scaled down",
        )["status"]
        wait_for(lambda: replicas_by_revision(control_plane, namespace)[stable] == 0, what="old revision at zero")
    assert transitions(selected(versions)) == [stable, new]
    actions = [entry["action"] for entry in done["history"]]
    assert actions.index("PreviewReady") < actions.index("promote") < actions.index("Switched")
    assert actions.index("Switched") < actions.index("Promoted")
    assert done["approvals"] == [] and selector_of(control_plane, namespace, "fraud-scorer-preview") == new


def test_a_failing_post_promotion_analysis_switches_back_at_once(control_plane, operator, monitoring, namespace):
    kubectl_apply(control_plane, namespace, template("error-rate"))
    checks = {
        "templates": [{"name": "error-rate"}],
        "args": [{"name": "prometheus", "value": monitoring.prometheus.url}],
    }
    body = blue_green(autoPromotionSeconds=0, postPromotionAnalysis=checks)
    stable, new = revision_of(body), revision_of(with_version(body, NEXT_VERSION))
    monitoring.simulator.set(namespace, stable, Behaviour())
    monitoring.simulator.set(namespace, new, Behaviour(error_ratio=0.4))
    assert apply(control_plane, namespace, body).returncode == 0
    wait_for(lambda: healthy(control_plane, namespace), what="first Ready")
    with service_versions(control_plane, namespace, "fraud-scorer") as versions:
        assert apply(control_plane, namespace, with_version(body, NEXT_VERSION)).returncode == 0
        failed = wait_status(control_plane, namespace, lambda s: s["phase"] == "Degraded", "switched back")["status"]
        assert selector_of(control_plane, namespace, "fraud-scorer") == stable
        assert replicas_by_revision(control_plane, namespace)[stable] == 3  # it never left full size
    assert failed["abort"]["reason"] == "AnalysisFailed" and "post-promotion analysis" in failed["abort"]["message"]
    assert failed["stableRevision"] == stable and failed["activeRevision"] == stable
    assert transitions(selected(versions)) == [stable, new, stable]
    actions = [entry["action"] for entry in failed["history"]]
    assert actions.index("Switched") < actions.index("Aborted")
    wait_for(lambda: replicas_by_revision(control_plane, namespace)[new] == 0, what="failed revision at zero")
