"""Shadow on the real control plane and a real Prometheus: mirrored traffic, compared with the stable model.

The comparison is the population stability index between the two revisions' prediction-score
histograms, as the traffic simulator exports them and Prometheus scrapes them. A watch on the
HTTPRoute records every stored version, so the tests can say what traffic the new model ever got.
"""

from __future__ import annotations

import pytest

from modelrollout.simulator.exporter import Behaviour
from tests.integration.conftest import get_json, wait_for
from tests.integration.helpers import (
    NEXT_VERSION,
    apply,
    gateway_that_mirrors,
    healthy,
    kubectl_apply,
    object_versions,
    revision_of,
    sample,
    wait_events,
    wait_status,
    with_version,
)


@pytest.fixture(autouse=True)
def mirroring_gateway(control_plane, namespace) -> None:
    """The routes' Gateway `public`, of a class that declares mirroring (else a shadow rightly waits)."""
    gateway_that_mirrors(control_plane, namespace)


SCORES = (
    'sum by (le) (increase(model_prediction_score_bucket{{namespace="{{{{args.namespace}}}}",'
    'revision="{{{{args.{side}}}}}"}}[20s]))'
)


def prediction_shift_template() -> dict:
    """PSI between the stable and the new revision's prediction scores over the last 20 seconds.

    The simulator sends each revision about 10 predictions a second: 20 s hold about 200, over
    minSamples 100. A loaded machine scrapes fewer (10 s held 96 once; 20 s held 89 in a CI run), so
    the first measurements may find too few: like the shipped templates, up to 10 of those inconclusive
    ones are waited through (only decisive measurements count toward `count`).
    """
    return {
        "apiVersion": "modelrollout.io/v1alpha1",
        "kind": "ModelAnalysisTemplate",
        "metadata": {"name": "prediction-shift"},
        "spec": {
            "args": [{"name": "prometheus"}],
            "metrics": [
                {
                    "name": "prediction-psi",
                    "interval": "1s",
                    "count": 2,
                    "inconclusiveLimit": 10,
                    "initialDelay": "2s",
                    "successCondition": "result < 0.1",
                    "provider": {
                        "prometheus": {
                            "address": "{{args.prometheus}}",
                            "timeout": "2s",
                            "distribution": {
                                "statistic": "psi",
                                "baselineQuery": SCORES.format(side="stable-revision"),
                                "candidateQuery": SCORES.format(side="canary-revision"),
                                "minSamples": 100,
                            },
                        }
                    },
                }
            ],
        },
    }


def shadowed(monitoring) -> dict:
    checks = {
        "templates": [{"name": "prediction-shift"}],
        "args": [{"name": "prometheus", "value": monitoring.prometheus.url}],
    }
    strategy = {
        "shadow": {"mirrorPercent": 100, "duration": "3s", "analysis": checks},
        "canary": {"steps": [{"setWeight": 50}, {"setWeight": 100}], "scaleDownDelaySeconds": 1},
    }
    route = {"gatewayAPI": {"parentRefs": [{"name": "public"}]}}
    return sample(replicas=2, strategy=strategy, trafficRouting=route)


def route_traffic(route: dict) -> tuple[int, int]:
    """(canary weight, mirror percent) of one stored HTTPRoute version."""
    rule = route["spec"]["rules"][0]
    mirrors = [f["requestMirror"]["percent"] for f in rule.get("filters", []) if f["type"] == "RequestMirror"]
    return rule["backendRefs"][1]["weight"], mirrors[0] if mirrors else 0


def shadow_pods(control_plane, namespace: str, revision: str) -> bool:
    """The revision's Deployment is on the shadow track and has pods (which carry only its revision)."""
    selector = f"modelrollout.io/revision={revision},modelrollout.io/track=shadow"
    deployments = get_json(control_plane, "deployments", "-n", namespace, "-l", selector)["items"]
    pods = get_json(control_plane, "pods", "-n", namespace, "-l", f"modelrollout.io/revision={revision}")["items"]
    return bool(deployments) and bool(pods)


def deploy(control_plane, namespace: str, monitoring, new_behaviour: Behaviour) -> tuple[dict, str, str]:
    kubectl_apply(control_plane, namespace, prediction_shift_template())
    body = shadowed(monitoring)
    stable, new = revision_of(body), revision_of(with_version(body, NEXT_VERSION))
    monitoring.simulator.set(namespace, stable, Behaviour())
    monitoring.simulator.set(namespace, new, new_behaviour)
    assert apply(control_plane, namespace, body).returncode == 0
    wait_for(lambda: healthy(control_plane, namespace), what="first Ready")
    return body, stable, new


def test_a_shadow_like_the_stable_model_goes_on_to_the_canary(control_plane, operator, monitoring, namespace):
    body, _stable, new = deploy(control_plane, namespace, monitoring, Behaviour())
    with object_versions(control_plane, namespace, "httproute", "fraud-scorer") as routes:
        assert apply(control_plane, namespace, with_version(body, NEXT_VERSION)).returncode == 0
        wait_for(lambda: shadow_pods(control_plane, namespace, new), what="shadow Deployment (track=shadow) with pods")
        done = wait_status(
            control_plane,
            namespace,
            lambda s: s["stableRevision"] == new and s["phase"] == "Healthy",
            "promoted after the shadow and the canary",
        )["status"]
    traffic = [route_traffic(route) for route in routes]
    mirrored = [i for i, (canary, mirror) in enumerate(traffic) if mirror == 100]
    live = [i for i, (canary, mirror) in enumerate(traffic) if canary > 0]
    assert mirrored and live and max(mirrored) < min(live)  # mirrored first, never both at once
    assert traffic[mirrored[0]] == (0, 100)
    (run,) = [r for r in done["analysisRuns"] if r["key"] == f"{new}-shadow"]
    assert run["phase"] == "Successful"
    (metric,) = run["metrics"]
    assert metric["successful"] == 2 and float(metric["measurements"][-1]["value"]) < 0.1
    actions = [entry["action"] for entry in done["history"]]
    for earlier, later in [("ShadowStarted", "ShadowCompleted"), ("ShadowCompleted", "StepCompleted")]:
        assert actions.index(earlier) < actions.index(later)
    assert actions.index("StepCompleted") < actions.index("Promoted")


def test_a_shadow_whose_predictions_differ_never_gets_live_traffic(control_plane, operator, monitoring, namespace):
    body, stable, new = deploy(control_plane, namespace, monitoring, Behaviour(score_mean=0.6))
    with object_versions(control_plane, namespace, "httproute", "fraud-scorer") as routes:
        assert apply(control_plane, namespace, with_version(body, NEXT_VERSION)).returncode == 0
        stopped = wait_status(control_plane, namespace, lambda s: s["phase"] == "Degraded", "shadow stopped")
        wait_for(lambda: route_traffic(routes[-1]) == (0, 0), what="mirror removed")
    status = stopped["status"]
    assert status["abort"]["reason"] == "AnalysisFailed" and status["stableRevision"] == stable
    assert "prediction-psi" in status["abort"]["message"] and "result < 0.1" in status["abort"]["message"]
    traffic = [route_traffic(route) for route in routes]
    assert all(canary == 0 for canary, _ in traffic), traffic  # not one stored route gave it live traffic
    assert any(mirror == 100 for _, mirror in traffic)
    (run,) = status["analysisRuns"]
    assert run["key"] == f"{new}-shadow" and run["phase"] == "Failed"
    assert float(run["metrics"][0]["measurements"][-1]["value"]) > 0.25
    aborted = [e for e in wait_events(control_plane, namespace, "RolloutAborted") if e["reason"] == "RolloutAborted"]
    assert aborted and "never served live traffic" in aborted[-1]["note"]
