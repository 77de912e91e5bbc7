"""Distribution metrics on a real Prometheus: two revisions' prediction-score histograms, and live inputs
against a baseline window, measured through the AnalysisRunner (templates read from the real apiserver).

The traffic simulator exports the exact expected bucket counts of each revision's normal distributions,
so the distance Prometheus' `increase()` windows give must be the one computed from the simulator's own
shares. Measured values are printed in the figures at the end of the run.
"""

from __future__ import annotations

import copy
import json
import math
import time
from datetime import UTC, datetime

import pytest
import yaml

from modelrollout.controller.analysis import AnalysisRunner
from modelrollout.core import analysis as runs
from modelrollout.core import distributions as d
from modelrollout.core.distributions import Histogram
from modelrollout.core.rollout import AnalysisRun, Decision, Weights
from modelrollout.core.spec import AnalysisRef, TemplateRef
from modelrollout.kube.client import KubeClient
from modelrollout.simulator.exporter import FEATURE_BUCKETS, SCORE_BUCKETS, Behaviour, normal_shares, score_shares
from tests.conftest import FIGURES
from tests.integration.conftest import REPO, wait_for
from tests.integration.helpers import kubectl_apply, rollout, start, wait_events, wait_status

BUILT_INS = REPO / "manifests" / "analysis-templates" / "model-templates.yaml"
SHIFTED = Behaviour(score_mean=0.4)  # scores one standard deviation higher than the default 0.3


def built_in(name: str, **args: str) -> dict:
    """A namespaced copy of a built-in ClusterModelAnalysisTemplate, with argument values set."""
    (original,) = (t for t in yaml.safe_load_all(BUILT_INS.read_text()) if t["metadata"]["name"] == name)
    template = copy.deepcopy(original)
    template["kind"] = "ModelAnalysisTemplate"
    template["metadata"] = {"name": name}
    for arg in template["spec"]["args"]:
        if arg["name"] in args:
            arg["value"] = args[arg["name"]]
    return template


def score_distance_template(prometheus: str) -> dict:
    """One metric per statistic, each comparing the canary's score histogram with the stable one's."""

    def metric(statistic: str) -> dict:
        selector = 'model_prediction_score_bucket{namespace="{{args.namespace}}",revision="{{args.%s}}"}'
        return {
            "name": statistic.lower(),
            "successCondition": "result < 0.1",
            "provider": {
                "prometheus": {
                    "address": prometheus,
                    "distribution": {
                        "statistic": statistic,
                        "baselineQuery": f"sum by (le) (increase({selector % 'stable-revision'}[10s]))",
                        "candidateQuery": f"sum by (le) (increase({selector % 'canary-revision'}[10s]))",
                    },
                }
            },
        }

    return {
        "apiVersion": "modelrollout.io/v1alpha1",
        "kind": "ModelAnalysisTemplate",
        "metadata": {"name": "score-distances"},
        "spec": {"metrics": [metric(statistic) for statistic in d.STATISTICS]},
    }


def measure(namespace: str, templates: list[str], stable: str, canary: str) -> runs.AnalysisInput:
    """One reconcile's worth of measurements for an analysis step of a canary `canary` over `stable`."""
    run = AnalysisRun("step", canary, AnalysisRef(tuple(TemplateRef(name) for name in templates)))
    decision = Decision(
        deployments=(),
        delete_revisions=(),
        stable_revision=stable,
        canary_revision=canary,
        weights=Weights(stable=80, canary=20),
        status={},
        analysis_runs=(run,),
    )
    body = {"metadata": {"namespace": namespace, "name": "fraud-scorer"}, "status": {}}
    kube = KubeClient.from_environment()
    try:
        return AnalysisRunner(kube)(body, decision, datetime.now(UTC))["step"]
    finally:
        kube.close()


def measure_when_filled(namespace: str, templates: list[str], stable: str, canary: str) -> runs.AnalysisInput:
    """Measure once every metric has a value: both windows hold minSamples observations."""

    def filled() -> runs.AnalysisInput | None:
        measured = measure(namespace, templates, stable, canary)
        assert not measured.error, measured.error
        errors = [m.error for m in measured.measurements.values() if m.error]
        assert not errors, errors
        return measured if all(m.value is not None for m in measured.measurements.values()) else None

    return wait_for(filled, timeout=60, what="both histogram windows to fill")


def expected_score_distance(statistic: str, baseline: Behaviour, candidate: Behaviour) -> float:
    bounds = (*SCORE_BUCKETS, math.inf)
    histograms = [Histogram(bounds, (*score_shares(b), 0.0)) for b in (baseline, candidate)]
    return d.STATISTICS[statistic](*histograms)


def expected_feature_psi(baseline: Behaviour, candidate: Behaviour) -> float:
    bounds = (*FEATURE_BUCKETS, math.inf)
    histograms = [
        Histogram(bounds, normal_shares(FEATURE_BUCKETS, b.feature_mean, b.feature_stddev))
        for b in (baseline, candidate)
    ]
    return d.psi(*histograms)


def test_same_predictions_pass_and_shifted_predictions_fail(control_plane, monitoring, namespace):
    template = built_in("model-prediction-distribution-shift", prometheus=monitoring.prometheus.url, window="10s")
    kubectl_apply(control_plane, namespace, template)
    for revision, behaviour in (("stable", Behaviour()), ("same", Behaviour()), ("shifted", SHIFTED)):
        monitoring.simulator.set(namespace, revision, behaviour)

    same = measure_when_filled(namespace, ["model-prediction-distribution-shift"], "stable", "same")
    shifted = measure_when_filled(namespace, ["model-prediction-distribution-shift"], "stable", "shifted")

    (metric,) = same.metrics
    same_value = same.measurements[metric.name].value
    shifted_value = shifted.measurements[metric.name].value
    FIGURES["PSI of prediction scores, identical revisions (real Prometheus)"] = f"{same_value:.3g}"
    FIGURES["PSI of prediction scores, shifted revision (real Prometheus)"] = f"{shifted_value:.3g}"
    assert same_value < 0.01
    assert shifted_value > 0.25
    assert shifted_value == pytest.approx(expected_score_distance(d.PSI, Behaviour(), SHIFTED), rel=0.02)
    assert runs.judge(metric, same.measurements[metric.name])[0] == runs.SUCCESSFUL
    phase, message = runs.judge(metric, shifted.measurements[metric.name])
    assert phase == runs.FAILED and "did not meet successCondition result <= 0.25" in message


def test_every_statistic_is_the_one_computed_from_the_simulators_shares(control_plane, monitoring, namespace):
    kubectl_apply(control_plane, namespace, score_distance_template(monitoring.prometheus.url))
    monitoring.simulator.set(namespace, "stable", Behaviour())
    monitoring.simulator.set(namespace, "shifted", SHIFTED)
    measured = measure_when_filled(namespace, ["score-distances"], "stable", "shifted")
    for statistic in d.STATISTICS:
        value = measured.measurements[statistic.lower()].value
        FIGURES[f"{statistic} of prediction scores, shifted revision (real Prometheus)"] = f"{value:.3g}"
        assert value == pytest.approx(expected_score_distance(statistic, Behaviour(), SHIFTED), rel=0.02), statistic


def test_too_few_predictions_is_no_data_never_a_pass(control_plane, monitoring, namespace):
    template = built_in("model-prediction-distribution-shift", prometheus=monitoring.prometheus.url, window="10s")
    kubectl_apply(control_plane, namespace, template)
    monitoring.simulator.set(namespace, "stable", Behaviour())
    monitoring.simulator.set(namespace, "quiet", Behaviour(requests_per_second=2.0))  # about 20 in 10s

    def window_filled() -> runs.AnalysisInput | None:
        measured = measure(namespace, ["model-prediction-distribution-shift"], "stable", "quiet")
        (measurement,) = measured.measurements.values()
        return measured if measurement.no_data_reason.startswith("candidate has") else None

    measured = wait_for(window_filled, timeout=60, what="the stable window to fill while the quiet one cannot")
    (metric,) = measured.metrics
    measurement = measured.measurements[metric.name]
    phase, message = runs.judge(metric, measurement)
    FIGURES["prediction shift with a quiet canary"] = message
    assert measurement.value is None and not measurement.error
    assert phase == runs.INCONCLUSIVE
    assert "baseline has" not in message and "fewer than minSamples 100" in message


def test_input_drift_compares_live_traffic_with_a_baseline_window(control_plane, monitoring, namespace):
    window, offset = 8.0, 12.0
    template = built_in(
        "model-input-distribution-drift",
        prometheus=monitoring.prometheus.url,
        feature="amount",
        window=f"{window:g}s",
        **{"baseline-offset": f"{offset:g}s"},
    )
    kubectl_apply(control_plane, namespace, template)
    usual, drifted = Behaviour(feature_mean=50.0), Behaviour(feature_mean=70.0)
    monitoring.simulator.set(namespace, "stable", usual)
    time.sleep(window + offset + 2)  # the baseline window, `offset` ago, is full
    before = measure(namespace, ["model-input-distribution-drift"], "stable", "canary")
    changed = time.monotonic()
    monitoring.simulator.set(namespace, "stable", drifted)
    time.sleep(max(0.0, changed + window + 2 - time.monotonic()))  # the live window holds only drifted traffic
    after = measure(namespace, ["model-input-distribution-drift"], "stable", "canary")

    (metric,) = before.metrics
    before_value = before.measurements[metric.name].value
    after_value = after.measurements[metric.name].value
    FIGURES["input PSI, live vs baseline window, no drift (real Prometheus)"] = f"{before_value:.3g}"
    FIGURES["input PSI, live vs baseline window, mean 50 -> 70 (real Prometheus)"] = f"{after_value:.3g}"
    assert before_value is not None and before_value < 0.01
    assert after_value == pytest.approx(expected_feature_psi(usual, drifted), rel=0.02)
    assert runs.judge(metric, before.measurements[metric.name])[0] == runs.SUCCESSFUL
    assert runs.judge(metric, after.measurements[metric.name])[0] == runs.FAILED


def distribution_of(template: dict) -> dict:
    return template["spec"]["metrics"][0]["provider"]["prometheus"]


BAD = [
    ("query-and-distribution", lambda p: p.update(query="up"), "set exactly one of query and distribution"),
    ("neither", lambda p: p.pop("distribution"), "set exactly one of query and distribution"),
    ("unknown-statistic", lambda p: p["distribution"].update(statistic="kl"), 'Unsupported value: "kl"'),
    ("zero-min-samples", lambda p: p["distribution"].update(minSamples=0), "should be greater than or equal to 1"),
    ("no-candidate", lambda p: p["distribution"].pop("candidateQuery"), "candidateQuery: Required value"),
]


@pytest.mark.parametrize(("case", "mutate", "message"), BAD, ids=[case[0] for case in BAD])
def test_bad_distribution_metrics_are_rejected_at_apply_time(control_plane, namespace, case, mutate, message):
    bad = built_in("model-prediction-distribution-shift", prometheus="http://prometheus:9090")
    bad["metadata"]["name"] = f"t-{case}"
    mutate(distribution_of(bad))
    result = control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_the_operator_rolls_back_a_canary_whose_predictions_shift(control_plane, operator, monitoring, namespace):
    template = built_in("model-prediction-distribution-shift", window="10s")
    template["spec"]["metrics"][0].update({"interval": "2s", "count": 2, "initialDelay": "4s"})
    kubectl_apply(control_plane, namespace, template)
    body = rollout(monitoring, [template])
    stable, _canary = start(control_plane, namespace, monitoring, body, SHIFTED)
    rolled_back = wait_status(control_plane, namespace, lambda s: s["phase"] == "Degraded", "rolled back")
    abort = rolled_back["status"]["abort"]
    FIGURES["operator abort message for a shifted canary"] = abort["message"]
    assert abort["reason"] == "AnalysisFailed"
    assert "prediction-distribution-shift: " in abort["message"] and "result <= 0.25" in abort["message"]
    assert rolled_back["status"]["stableRevision"] == stable
    aborted = [e for e in wait_events(control_plane, namespace, "RolloutAborted") if e["reason"] == "RolloutAborted"]
    assert "prediction-distribution-shift" in aborted[0]["note"]
