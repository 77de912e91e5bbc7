"""Analysis semantics: one measurement's phase, limits, intervals, and missing data."""

from datetime import UTC, datetime, timedelta

import pytest

from modelrollout.core import analysis as a
from modelrollout.core.analysis import Measurement, MetricSpec

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("metric", "value", "error", "phase"),
    [
        (MetricSpec("m", success_condition="result < 0.01"), 0.001, "", a.SUCCESSFUL),
        (MetricSpec("m", success_condition="result < 0.01"), 0.02, "", a.FAILED),
        (MetricSpec("m", failure_condition="result > 0.05"), 0.02, "", a.SUCCESSFUL),
        (MetricSpec("m", failure_condition="result > 0.05"), 0.06, "", a.FAILED),
        (
            MetricSpec("m", success_condition="result < 0.01", failure_condition="result > 0.05"),
            0.02,
            "",
            a.INCONCLUSIVE,
        ),
        (MetricSpec("m", success_condition="result < 1"), None, "", a.INCONCLUSIVE),
        (MetricSpec("m", success_condition="result < 1"), float("nan"), "", a.INCONCLUSIVE),
        (MetricSpec("m", success_condition="result < 1"), (), "", a.INCONCLUSIVE),
        (MetricSpec("m", success_condition="result < 1", no_data_policy="Failure"), None, "", a.FAILED),
        (MetricSpec("m", success_condition="result.all(x, x < 1.0)"), (0.2, 0.5), "", a.SUCCESSFUL),
        (MetricSpec("m", success_condition="result.all(x, x < 1.0)"), (0.2, 1.5), "", a.FAILED),
        (MetricSpec("m", success_condition="result <"), 0.5, "", a.ERROR),
        (MetricSpec("m", success_condition="result + 1"), 0.5, "", a.ERROR),
        (MetricSpec("m", success_condition="result < 1"), None, "connection refused", a.ERROR),
    ],
    ids=[
        "success",
        "miss",
        "fail-cond-false",
        "fail-cond-true",
        "neither",
        "empty",
        "nan",
        "empty-vector",
        "no-data-failure",
        "vector-ok",
        "vector-bad",
        "no-compile",
        "not-bool",
        "provider-error",
    ],
)
def test_one_measurement(metric, value, error, phase):
    assert a.judge(metric, Measurement(T0, value, error))[0] == phase


def test_no_data_is_never_a_pass_and_says_so():
    phase, message = a.judge(MetricSpec("m", success_condition="result < 1"), Measurement(T0, None))
    assert phase == a.INCONCLUSIVE and message == "no data (noDataPolicy Inconclusive)"


def run_series(metric, values, step=60):
    run = None
    for index, value in enumerate(values):
        now = T0 + timedelta(seconds=step * index)
        error = value if isinstance(value, str) else ""
        measurement = Measurement(now, None if error else value, error)
        run = a.advance(run, "k", "rev", (metric,), {metric.name: measurement}, now)
    return run


def test_failure_limit_allows_that_many_failures():
    metric = MetricSpec("m", count=5, failure_limit=1, success_condition="result < 1")
    assert run_series(metric, [0.5, 2.0, 0.5])["phase"] == a.RUNNING
    assert run_series(metric, [0.5, 2.0, 0.5, 2.0])["phase"] == a.FAILED
    assert run_series(metric, [0.5, 2.0, 0.5, 0.5, 0.5])["phase"] == a.SUCCESSFUL


def test_inconclusive_limit():
    metric = MetricSpec("m", count=3, inconclusive_limit=1, success_condition="result < 1")
    assert run_series(metric, [None, 0.5])["phase"] == a.RUNNING
    assert run_series(metric, [None, None])["phase"] == a.INCONCLUSIVE


def test_consecutive_errors_make_the_run_inconclusive_never_successful():
    metric = MetricSpec("m", count=3, consecutive_error_limit=2, success_condition="result < 1")
    recovered = run_series(metric, ["refused", "refused", 0.5, "refused", "refused", 0.5, 0.5])
    assert recovered["phase"] == a.SUCCESSFUL and recovered["metrics"][0]["successful"] == 3
    stuck = run_series(metric, ["refused", "refused", "refused"])
    assert stuck["phase"] == a.INCONCLUSIVE
    assert "3 consecutive errors, last: refused" in stuck["message"]


def test_a_failed_run_names_the_metric_its_value_and_condition():
    run = run_series(MetricSpec("error-rate", success_condition="result < 0.01"), [0.07])
    assert run["phase"] == a.FAILED
    assert run["message"] == "error-rate: 0.07 did not meet successCondition result < 0.01"


def test_only_the_last_measurements_are_kept():
    run = run_series(MetricSpec("m", count=0, success_condition="result < 1"), [0.1 * i for i in range(8)])
    (metric,) = run["metrics"]
    assert metric["count"] == 8 and len(metric["measurements"]) == a.MEASUREMENTS_KEPT
    assert metric["measurements"][-1]["value"] == "0.7"


def test_interval_and_initial_delay_decide_when_a_metric_is_due():
    metric = MetricSpec("m", interval=60, initial_delay=30, count=3, success_condition="result < 1")
    assert a.due_metrics(None, (metric,), T0) == []  # the run starts now; first measurement after 30s
    run = a.advance(None, "k", "rev", (metric,), {}, T0)
    assert a.seconds_until_due(run, (metric,), T0) == 30
    later = T0 + timedelta(seconds=30)
    assert a.due_metrics(run, (metric,), later) == [metric]
    run = a.advance(run, "k", "rev", (metric,), {"m": Measurement(later, 0.5)}, later)
    assert a.due_metrics(run, (metric,), later + timedelta(seconds=59)) == []
    assert a.seconds_until_due(run, (metric,), later) == 60
    # A measurement handed in before it is due is ignored.
    early = a.advance(run, "k", "rev", (metric,), {"m": Measurement(later, 5.0)}, later + timedelta(seconds=10))
    assert early["metrics"][0]["count"] == 1


def test_errors_and_no_data_never_count_toward_success():
    # One success and two unreachable-Prometheus errors must not add up to three measurements passed.
    metric = MetricSpec("m", count=3, consecutive_error_limit=5, inconclusive_limit=5, success_condition="result < 1")
    assert run_series(metric, [0.5, "refused", "refused"])["phase"] == a.RUNNING
    assert run_series(metric, [0.5, None, None])["phase"] == a.RUNNING
    assert run_series(metric, [0.5, "refused", None, 0.5, 0.5])["phase"] == a.SUCCESSFUL


def run_pair(deciding: MetricSpec, dry: MetricSpec, values: list[tuple[float, float]], step=60):
    """Both metrics measured together: (deciding value, dry-run value) per measurement."""
    run = None
    for index, (value, dry_value) in enumerate(values):
        now = T0 + timedelta(seconds=step * index)
        measured = {deciding.name: Measurement(now, value), dry.name: Measurement(now, dry_value)}
        run = a.advance(run, "k", "rev", (deciding, dry), measured, now)
    return run


def test_a_failing_dry_run_metric_is_shown_and_never_fails_the_run():
    error_rate = MetricSpec("error-rate", count=2, success_condition="result < 0.01")
    psi = MetricSpec("psi", count=2, success_condition="result < 0.1", dry_run=True)

    run = run_pair(error_rate, psi, [(0.001, 0.3), (0.002, 0.4)])

    assert run["phase"] == a.SUCCESSFUL
    dry = next(metric for metric in run["metrics"] if metric["name"] == "psi")
    assert (dry["phase"], dry["failed"], dry["dryRun"]) == (a.FAILED, 1, True)
    assert "psi: 0.3 did not meet successCondition result < 0.1 (dry run)" in run["message"]


def test_a_run_waits_for_its_dry_run_metric_and_still_fails_on_the_deciding_one():
    error_rate = MetricSpec("error-rate", count=1, success_condition="result < 0.01")
    psi = MetricSpec("psi", count=3, success_condition="result < 0.1", dry_run=True)
    waiting = run_pair(error_rate, psi, [(0.001, 0.05)])
    assert waiting["phase"] == a.RUNNING  # the dry-run metric is not done yet
    done = run_pair(error_rate, psi, [(0.001, 0.05)] * 3)
    assert done["phase"] == a.SUCCESSFUL
    failed = run_pair(error_rate, psi, [(0.5, 0.05)])
    assert failed["phase"] == a.FAILED and failed["message"].startswith("error-rate: 0.5")


def test_measurement_retention_keeps_that_many_per_metric():
    kept = run_series(
        MetricSpec("m", count=0, retention=12, success_condition="result < 1"), [0.05 * i for i in range(15)]
    )
    (metric,) = kept["metrics"]
    assert [m["value"] for m in metric["measurements"]] == [f"{0.05 * i:.6g}" for i in range(3, 15)]


def test_a_providers_failure_verdict_fails_the_measurement_whatever_its_value():
    metric = MetricSpec("golden-set", success_condition="result >= 0.9")
    phase, message = a.judge(metric, Measurement(T0, None, failure="Job golden-set-1 failed: BackoffLimitExceeded"))
    assert (phase, message) == (a.FAILED, "Job golden-set-1 failed: BackoffLimitExceeded")


def test_a_measurement_under_way_is_looked_at_every_poll_not_in_a_hot_loop():
    metric = MetricSpec("golden-set", interval=300, count=2, success_condition="result >= 0.9")
    run = a.advance(None, "k", "rev", (metric,), {}, T0)  # due at once, nothing measured yet
    assert a.seconds_until_due(run, (metric,), T0) == 0.0
    assert a.seconds_until_due(run, (metric,), T0, frozenset({"golden-set"})) == a.PENDING_POLL_SECONDS
    measured = a.advance(run, "k", "rev", (metric,), {"golden-set": Measurement(T0, 0.95)}, T0)
    assert a.seconds_until_due(measured, (metric,), T0, frozenset({"golden-set"})) == 300.0
