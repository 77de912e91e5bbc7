"""Analysis runs: when each metric is measured and what its measurements add up to.

Rules (Argo Rollouts' vocabulary, with the missing-data lessons learned):
- A metric is measured every `interval` after `initialDelay` until `count` decisive (successful or
  failed) measurements are in (0: until the run ends); errors and no-data results are retried, never
  counted toward `count`. A measurement counts once: one no newer than the last counted is ignored.
- A metric measures one query, or the distance between two histograms (`DistributionSpec`,
  computed by `core.distributions`); the distance is the measurement's value.
- One measurement is Successful, Failed, Inconclusive or Error:
  - no data (an empty vector, NaN, or a histogram with fewer than `minSamples` observations) is
    **Inconclusive** by default, or Failed when the metric's `noDataPolicy` is `Failure`; it is never
    a pass;
  - `failureCondition` true → Failed; else `successCondition` true → Successful; else Failed when
    only a successCondition is given, Inconclusive when both are given and neither holds;
  - a provider error (Prometheus unreachable, bad query) is an Error; a provider's own failure
    verdict (a Job that failed) is Failed.
- A measurement under way (a Job still running) is no measurement: the metric stays due and is looked
  at again every `PENDING_POLL_SECONDS`, never in a hot loop.
- A metric Fails once failures exceed `failureLimit`, is Inconclusive once inconclusive results exceed
  `inconclusiveLimit` or consecutive errors exceed `consecutiveErrorLimit` (an unreachable Prometheus
  never promotes and never rolls back on its own: a person decides), and Succeeds after `count`
  measurements otherwise.
- A run is Failed if any metric failed, Inconclusive if any is inconclusive, Successful when all
  succeeded, else Running. The failing metric, its value and its condition are in the run's message.
- A `dryRun` metric is measured and judged the same way and shown in status and metrics, but its phase
  never decides the run: the run is Successful once every metric is done and no other metric failed
  or is inconclusive (Argo Rollouts' dry-run, for calibrating a threshold such as PSI on live traffic).
- The run state is plain data persisted in the ModelDeployment's status; the last `retention`
  measurements of each metric (default `MEASUREMENTS_KEPT`) are kept there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from modelrollout.core.conditions import format_time, parse_time
from modelrollout.core.enums import AnalysisPhase
from modelrollout.core.expressions import ConditionError, evaluate_condition

RUNNING = AnalysisPhase.RUNNING
SUCCESSFUL = AnalysisPhase.SUCCESSFUL
FAILED = AnalysisPhase.FAILED
INCONCLUSIVE = AnalysisPhase.INCONCLUSIVE
ERROR = AnalysisPhase.ERROR


class NoDataPolicy(StrEnum):
    """`noDataPolicy`: what a measurement with no data counts as (never a pass)."""

    INCONCLUSIVE = "Inconclusive"
    FAILURE = "Failure"


NO_DATA_INCONCLUSIVE = NoDataPolicy.INCONCLUSIVE
NO_DATA_FAILURE = NoDataPolicy.FAILURE
MEASUREMENTS_KEPT = 5
PENDING_POLL_SECONDS = 2.0  # how often a measurement under way (a running Job) is looked at


@dataclass(frozen=True)
class DistributionSpec:
    """Measure the distance (a `core.distributions` statistic) between two histograms' buckets."""

    statistic: str  # psi | ks | jensenShannon
    baseline_query: str
    candidate_query: str
    min_samples: int = 100


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a resolved analysis template (arguments already substituted)."""

    name: str
    interval: float = 60.0
    initial_delay: float = 0.0
    count: int = 1
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4
    success_condition: str = ""
    failure_condition: str = ""
    no_data_policy: NoDataPolicy = NoDataPolicy.INCONCLUSIVE
    query: str = ""
    distribution: DistributionSpec | None = None  # set instead of `query`
    dry_run: bool = False  # measured and shown, never decides the run
    retention: int = MEASUREMENTS_KEPT  # measurements kept in status


@dataclass(frozen=True)
class Measurement:
    """What a provider returned: a value, several values, no data (None), or an error."""

    time: datetime
    value: float | tuple[float, ...] | None = None
    error: str = ""
    no_data_reason: str = ""  # why there is no value, when more can be said than "no data"
    failure: str = ""  # the provider's own verdict that the measurement failed (a Job that failed), and why


@dataclass(frozen=True)
class AnalysisInput:
    """What the shell resolved and measured for one run in this reconcile."""

    metrics: tuple[MetricSpec, ...] = ()
    measurements: Mapping[str, Measurement] = field(default_factory=dict)
    error: str = ""  # the run cannot be resolved (missing template or Secret, bad condition)
    pending: frozenset[str] = frozenset()  # metrics whose measurement is under way (a Job still running)


def describe_value(value: float | tuple[float, ...] | None) -> str:
    if value is None:
        return "no data"
    if isinstance(value, tuple):
        return "[" + ", ".join(f"{v:.6g}" for v in value) + "]"
    return f"{value:.6g}"


def _no_data(value: float | tuple[float, ...] | None) -> bool:
    if value is None:
        return True
    values = value if isinstance(value, tuple) else (value,)
    return len(values) == 0 or all(math.isnan(v) for v in values)


def judge(metric: MetricSpec, measurement: Measurement) -> tuple[str, str]:
    """The phase of one measurement and why."""
    if measurement.error:
        return ERROR, measurement.error
    if measurement.failure:
        return FAILED, measurement.failure
    value = measurement.value
    if _no_data(value):
        phase = FAILED if metric.no_data_policy == NO_DATA_FAILURE else INCONCLUSIVE
        reason = f": {measurement.no_data_reason}" if measurement.no_data_reason else ""
        return phase, f"no data{reason} (noDataPolicy {metric.no_data_policy})"
    assert value is not None
    shown = describe_value(value)
    try:
        if metric.failure_condition and evaluate_condition(metric.failure_condition, value):
            return FAILED, f"{shown} met failureCondition {metric.failure_condition}"
        if metric.success_condition:
            if evaluate_condition(metric.success_condition, value):
                return SUCCESSFUL, f"{shown} met successCondition {metric.success_condition}"
            if metric.failure_condition:
                return INCONCLUSIVE, f"{shown} met neither condition"
            return FAILED, f"{shown} did not meet successCondition {metric.success_condition}"
    except ConditionError as error:
        return ERROR, str(error)
    return SUCCESSFUL, f"{shown} did not meet failureCondition {metric.failure_condition}"


def new_metric_state(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "phase": RUNNING,
        "count": 0,
        "successful": 0,
        "failed": 0,
        "inconclusive": 0,
        "errors": 0,
        "consecutiveErrors": 0,
        "measurements": [],
        "message": "",
    }


def new_run(key: str, revision: str, now: datetime) -> dict[str, Any]:
    return {
        "key": key,
        "revision": revision,
        "phase": RUNNING,
        "startedAt": format_time(now),
        "message": "",
        "metrics": [],
    }


def is_due(metric: MetricSpec, state: Mapping[str, Any] | None, started: datetime, now: datetime) -> bool:
    if state is not None and state.get("phase", RUNNING) != RUNNING:
        return False
    if now < started + timedelta(seconds=metric.initial_delay):
        return False
    last = parse_time((state or {}).get("lastMeasuredAt"))
    return last is None or now >= last + timedelta(seconds=metric.interval)


def due_metrics(run: Mapping[str, Any] | None, metrics: tuple[MetricSpec, ...], now: datetime) -> list[MetricSpec]:
    """Metrics to measure now; the shell queries exactly these."""
    if run is not None and run.get("phase", RUNNING) != RUNNING:
        return []
    started = parse_time((run or {}).get("startedAt")) or now
    states = {m["name"]: m for m in (run or {}).get("metrics", [])}
    return [metric for metric in metrics if is_due(metric, states.get(metric.name), started, now)]


def seconds_until_due(
    run: Mapping[str, Any], metrics: tuple[MetricSpec, ...], now: datetime, pending: frozenset[str] = frozenset()
) -> float | None:
    """Until the next measurement is due; a measurement under way is looked at every `PENDING_POLL_SECONDS`."""
    if run.get("phase") != RUNNING:
        return None
    started = parse_time(run.get("startedAt")) or now
    states = {m["name"]: m for m in run.get("metrics", [])}
    waits = []
    for metric in metrics:
        state = states.get(metric.name) or {}
        if state.get("phase", RUNNING) != RUNNING:
            continue
        last = parse_time(state.get("lastMeasuredAt"))
        due = last + timedelta(seconds=metric.interval) if last else started + timedelta(seconds=metric.initial_delay)
        wait = max(0.0, (due - now).total_seconds())
        waits.append(PENDING_POLL_SECONDS if metric.name in pending and wait == 0 else wait)
    return min(waits) if waits else None


def _metric_phase(metric: MetricSpec, state: dict[str, Any]) -> str:
    if state["failed"] > metric.failure_limit:
        return FAILED
    if state["inconclusive"] > metric.inconclusive_limit:
        return INCONCLUSIVE
    if state["consecutiveErrors"] > metric.consecutive_error_limit:
        return INCONCLUSIVE
    # Only decisive measurements count: errors and no-data results can never add up to a pass.
    if metric.count > 0 and state["successful"] + state["failed"] >= metric.count:
        return SUCCESSFUL
    return RUNNING


def advance(
    run: Mapping[str, Any] | None,
    key: str,
    revision: str,
    metrics: tuple[MetricSpec, ...],
    measurements: Mapping[str, Measurement],
    now: datetime,
) -> dict[str, Any]:
    """The run after taking in this reconcile's measurements (only those that were due count)."""
    state = dict(run) if run else new_run(key, revision, now)
    if state.get("phase") != RUNNING:
        return state
    due = {metric.name for metric in due_metrics(state, metrics, now)}
    previous = {m["name"]: m for m in state.get("metrics", [])}
    updated = []
    for metric in metrics:
        entry = dict(previous.get(metric.name) or new_metric_state(metric.name))
        measurement = measurements.get(metric.name)
        last = parse_time(entry.get("lastMeasuredAt"))
        fresh = measurement is not None and (last is None or measurement.time > last)
        if metric.name in due and fresh:
            phase, message = judge(metric, measurement)
            entry["count"] += 1
            entry["lastMeasuredAt"] = format_time(measurement.time)
            entry["consecutiveErrors"] = entry["consecutiveErrors"] + 1 if phase == ERROR else 0
            counter = {SUCCESSFUL: "successful", FAILED: "failed", INCONCLUSIVE: "inconclusive", ERROR: "errors"}
            entry[counter[phase]] += 1
            recorded = {"time": format_time(measurement.time), "phase": phase, "message": message}
            if measurement.value is not None and not measurement.error:
                recorded["value"] = describe_value(measurement.value)
            entry["measurements"] = [*entry["measurements"], recorded][-max(1, metric.retention) :]
            entry["message"] = f"{metric.name}: {message}"
            entry["condition"] = metric.failure_condition or metric.success_condition
            entry["phase"] = _metric_phase(metric, entry)
            if entry["phase"] == INCONCLUSIVE and entry["consecutiveErrors"] > metric.consecutive_error_limit:
                entry["message"] = f"{metric.name}: {entry['consecutiveErrors']} consecutive errors, last: {message}"
            if metric.dry_run:
                entry["dryRun"] = True
                entry["message"] = f"{entry['message']} (dry run)"
        updated.append(entry)
    state["metrics"] = updated
    dry = {metric.name for metric in metrics if metric.dry_run}
    deciding = [entry for entry in updated if entry["name"] not in dry]
    phases = [entry["phase"] for entry in deciding]
    failing = [entry for entry in deciding if entry["phase"] in (FAILED, INCONCLUSIVE)]
    if FAILED in phases:
        state["phase"] = FAILED
    elif INCONCLUSIVE in phases:
        state["phase"] = INCONCLUSIVE
    elif updated and all(entry["phase"] != RUNNING for entry in updated):
        state["phase"] = SUCCESSFUL  # every metric is done, and none that decides failed
    else:
        state["phase"] = RUNNING
    if failing:
        state["message"] = "; ".join(entry["message"] for entry in failing)
    elif state["phase"] == SUCCESSFUL:
        state["message"] = "; ".join(entry["message"] for entry in updated)
    else:
        measured = [entry["message"] for entry in updated if entry["message"]]
        state["message"] = "; ".join(measured) if measured else "waiting for the first measurement"
    return state
