"""The analysis shell measures a `distribution` metric: two histogram queries, one distance, no silent pass.

Templates come from a dict and histograms from a fake provider, so these tests need no cluster.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from modelrollout.controller.analysis import AnalysisRunner
from modelrollout.core import analysis as runs
from modelrollout.core.rollout import AnalysisRun, Decision, Weights
from modelrollout.core.spec import AnalysisRef, TemplateRef
from modelrollout.providers import NoDataError, ProviderError
from tests.unit.fake_kube import ObjectsByName

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
INF = math.inf
BASELINE_QUERY = 'sum by (le) (increase(score_bucket{revision="{{args.stable-revision}}"}[{{args.window}}]))'
CANDIDATE_QUERY = 'sum by (le) (increase(score_bucket{revision="{{args.canary-revision}}"}[{{args.window}}]))'
STABLE_SCORES = ((0.5, 500.0), (1.0, 800.0), (INF, 1000.0))  # shares 0.5, 0.3, 0.2
CANARY_SCORES = ((0.5, 300.0), (1.0, 600.0), (INF, 1000.0))  # shares 0.3, 0.3, 0.4


def template(**distribution) -> dict:
    return {
        "spec": {
            "args": [{"name": "window", "value": "10m"}],
            "metrics": [
                {
                    "name": "shift",
                    "successCondition": "result <= 0.25",
                    "provider": {
                        "prometheus": {
                            "address": "http://prometheus:9090",
                            "distribution": {
                                "statistic": "psi",
                                "baselineQuery": BASELINE_QUERY,
                                "candidateQuery": CANDIDATE_QUERY,
                                **distribution,
                            },
                        }
                    },
                }
            ],
        }
    }


class FakePrometheus:
    """Answers histogram queries by the revision they select; anything else is a usage error here."""

    name = "prometheus"

    def __init__(self, histograms: dict[str, object]) -> None:
        self.histograms = histograms
        self.queries: list[str] = []

    def __call__(self, config):
        return self

    def query(self, text):
        raise AssertionError(f"a distribution metric must not run a plain query: {text}")

    def query_histogram(self, text):
        self.queries.append(text)
        matching = [value for revision, value in self.histograms.items() if f'revision="{revision}"' in text]
        answer = matching[0] if matching else NoDataError("the query returned no series")
        if isinstance(answer, Exception):
            raise answer
        return answer


BODY = {"metadata": {"namespace": "fraud", "name": "fraud-scorer"}, "status": {}}


def decision(stable: str = "stable-1") -> Decision:
    """A canary at 20% whose analysis step runs the template `shift`."""
    return Decision(
        deployments=(),
        delete_revisions=(),
        stable_revision=stable,
        canary_revision="canary-1",
        weights=Weights(stable=80, canary=20),
        status={},
        analysis_runs=(AnalysisRun("step-1", "canary-1", AnalysisRef((TemplateRef("shift"),))),),
    )


def measure(prometheus: FakePrometheus, stable: str = "stable-1", **distribution) -> runs.AnalysisInput:
    runner = AnalysisRunner(ObjectsByName({"shift": template(**distribution)}), prometheus)
    return runner(BODY, decision(stable), NOW)["step-1"]


def test_the_measurement_is_the_distance_between_the_two_revisions_histograms():
    prometheus = FakePrometheus({"stable-1": STABLE_SCORES, "canary-1": CANARY_SCORES})
    measured = measure(prometheus)
    (metric,) = measured.metrics
    assert metric.distribution is not None and metric.distribution.min_samples == 100  # the CRD's default
    assert prometheus.queries == [
        'sum by (le) (increase(score_bucket{revision="stable-1"}[10m]))',
        'sum by (le) (increase(score_bucket{revision="canary-1"}[10m]))',
    ]
    by_hand = 0.2 * math.log(0.5 / 0.3) - 0.2 * math.log(0.2 / 0.4)
    assert measured.measurements["shift"].value == pytest.approx(by_hand)
    assert runs.judge(metric, measured.measurements["shift"])[0] == runs.SUCCESSFUL


def test_arguments_are_escaped_in_both_queries():
    hostile = 'x"} or vector(1) or up{a="'
    prometheus = FakePrometheus({"canary-1": CANARY_SCORES})
    (metric,) = measure(prometheus, stable=hostile).metrics
    assert metric.distribution is not None
    assert 'revision="x\\"} or vector(1) or up{a=\\""' in metric.distribution.baseline_query


@pytest.mark.parametrize(
    ("canary", "min_samples", "reason"),
    [
        (
            ((0.5, 10.0), (1.0, 20.0), (INF, 40.0)),
            100,
            "no data: candidate has 40 observations, fewer than minSamples 100",
        ),
        (NoDataError("the query returned no series"), 100, "the candidate query returned no series"),
        (CANARY_SCORES, 5000, "baseline has 1000 observations and candidate has 1000 observations"),
    ],
    ids=["few-samples", "empty-vector", "min-samples-raised"],
)
def test_too_little_data_is_inconclusive_never_a_pass(canary, min_samples, reason):
    prometheus = FakePrometheus({"stable-1": STABLE_SCORES, "canary-1": canary})
    measured = measure(prometheus, minSamples=min_samples)
    measurement = measured.measurements["shift"]
    assert measurement.value is None and not measurement.error
    phase, message = runs.judge(measured.metrics[0], measurement)
    assert phase == runs.INCONCLUSIVE
    assert reason in message and message.endswith("(noDataPolicy Inconclusive)")


@pytest.mark.parametrize(
    ("canary", "error"),
    [
        (((0.25, 300.0), (INF, 1000.0)), "different buckets: baseline [0.5, 1, +Inf], candidate [0.25, +Inf]"),
        (((0.5, 900.0), (INF, 500.0)), "candidate histogram: bucket le=+Inf has count 500, below the previous"),
        (ProviderError("Prometheus at http://prometheus:9090 is unreachable"), "unreachable"),
    ],
    ids=["mismatched-buckets", "not-one-histogram", "unreachable"],
)
def test_histograms_that_cannot_be_compared_are_errors(canary, error):
    prometheus = FakePrometheus({"stable-1": STABLE_SCORES, "canary-1": canary})
    measured = measure(prometheus)
    measurement = measured.measurements["shift"]
    assert measurement.value is None and error in measurement.error
    assert runs.judge(measured.metrics[0], measurement)[0] == runs.ERROR


def test_query_and_distribution_together_cannot_be_resolved():
    both = template()
    both["spec"]["metrics"][0]["provider"]["prometheus"]["query"] = "up"
    runner = AnalysisRunner(ObjectsByName({"shift": both}), FakePrometheus({}))
    error = runner(BODY, decision(), NOW)["step-1"].error
    assert (
        error
        == "ModelAnalysisTemplate shift, metric shift: set exactly one of provider.prometheus.query and .distribution"
    )
