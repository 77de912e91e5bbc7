"""The moves every stage shares: start, abort, promote, retire a revision, complete a step, judge an analysis.

Rules:
- An abort takes every live and mirrored share and every header route off the new revision in the
  same decision (the plan derives 0% from the cleared intent) and schedules its scale-down after the abort delay.
  With `dynamicStableScale` the route leaves it as fast as the stable's pods come up (see `plan`).
- A promotion makes the new revision stable at once; the old one keeps its pods for the scale-down
  delay, after traffic has left it.
- Analysis runs are asked for by kind; a run's measurements are judged once, in `core.analysis`, and
  reported in the decision for the operator's metrics.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from modelrollout.core import analysis as runs
from modelrollout.core.analysis import AnalysisInput, MetricSpec
from modelrollout.core.conditions import whole_second_after
from modelrollout.core.enums import (
    AbortReason,
    EventReason,
    EventType,
    GateKind,
    HistoryAction,
    PauseReason,
    ProgressReason,
    RunKind,
    Stage,
)
from modelrollout.core.hooks import HookPoint
from modelrollout.core.rollout.decision import AnalysisRun, MeasuredMetric
from modelrollout.core.rollout.draft import Draft
from modelrollout.core.rollout.state import Abort, Gate, ScaleDown
from modelrollout.core.rollout.transitions import Outcome
from modelrollout.core.spec import AnalysisRef

SHORTEST_INTERVAL_SECONDS = 0.1  # the CRDs' floor for analysis intervals and alert polls
ALL_PAUSES = (
    PauseReason.STEP,
    PauseReason.MANUAL,
    PauseReason.INCONCLUSIVE,
    PauseReason.APPROVAL,
    PauseReason.HOOK_FAILED,
)
ROLLOUT_PAUSES = tuple(reason for reason in ALL_PAUSES if reason is not PauseReason.MANUAL)  # a person's pause stays
CLEARED_ROLLOUT = {
    "canary": "",
    "canary_weight": 0,
    "mirror_percent": 0,
    "canary_scale": None,
    "header_routes": (),
    "approvals": (),
    "mirror_refused": None,
}


def scale_down_delay(d: Draft) -> int:
    bg, canary = d.blue_green, d.obs.spec.canary
    return bg.scale_down_delay_seconds if bg else (canary.scale_down_delay_seconds if canary else 30)


def abort_scale_down_delay(d: Draft) -> int:
    bg, canary = d.blue_green, d.obs.spec.canary
    return bg.abort_scale_down_delay_seconds if bg else (canary.abort_scale_down_delay_seconds if canary else 30)


def first_stage(d: Draft) -> Outcome:
    if d.shadow is not None:
        return Outcome.START_SHADOW
    return Outcome.START_PREVIEW if d.blue_green is not None else Outcome.START_CANARY


def plan_in_words(d: Draft) -> str:
    stages = []
    if d.shadow is not None:
        stages.append(f"shadow at {d.shadow.mirror_percent}% mirrored traffic")
    if d.blue_green is not None:
        stages.append("blue/green preview, then switch")
    elif d.obs.spec.canary is not None:
        stages.append(f"canary in {len(d.steps)} steps")
    else:
        stages.append("promotion by a person")
    return ", then ".join(stages) + f" (automation {d.obs.spec.automation})"


def start(d: Draft, revision: str) -> None:
    outcome = first_stage(d)
    d.transition(
        outcome,
        canary=revision,
        step=0,
        canary_weight=0,
        mirror_percent=0,
        canary_scale=None,
        header_routes=(),
        abort=None,
        approvals=(),
        runs=(),
        hooks=(),
        # Shadow and preview stages count their time from when the new pods are ready.
        step_started=d.step_start if outcome is Outcome.START_CANARY else None,
        scale_downs=tuple(item for item in d.state.scale_downs if item.revision != revision),
    )
    d.unpause(*ROLLOUT_PAUSES)
    if d.obs.spec.shadow is not None and d.shadow is None:
        d.emit(
            EventReason.SHADOW_UNSUPPORTED,
            f"strategy.shadow needs a router that mirrors; {d.obs.spec.router} does not; shadow skipped",
            EventType.WARNING,
        )
    message = f"rolling out revision {revision} (model {d.obs.spec.model.version}): {plan_in_words(d)}"
    d.record(HistoryAction.STARTED, revision, message)
    d.emit(EventReason.STARTED, message)


def waits_for_drain(d: Draft) -> bool:
    """With `dynamicStableScale`, no rollout starts while a revision traffic is leaving still has a share:
    the canary side of the route is that revision's until the stable's pods carry it all."""
    drain = d.draining()
    if drain is None:
        return False
    d.wait(
        f"revision {d.current} starts once revision {drain.revision} has drained: {drain.describe()}",
        ProgressReason.DRAINING,
    )
    return True


def returns_gradually(d: Draft) -> bool:
    """With `dynamicStableScale` and a stable short of pods, traffic leaving the canary follows the stable's pods."""
    return d.dynamic_stable and d.available(d.state.stable) < d.replicas


def scale_down_at(d: Draft, seconds: float) -> datetime:
    """When a revision `seconds` from now is due to scale down: rounded up to the whole second the status keeps,
    so a delay is never shorter than set; a delay of 0 is due now."""
    return whole_second_after(d.now + timedelta(seconds=seconds)) if seconds > 0 else d.now


def retire(d: Draft, revision: str, delay: float | None = None) -> None:
    """Schedule `revision`'s scale-down: traffic has left it (the plan sees to that) and it keeps its pods a while."""
    if not revision or revision == d.state.stable:
        return
    seconds = abort_scale_down_delay(d) if delay is None else delay
    others = tuple(item for item in d.state.scale_downs if item.revision != revision)
    d.update(scale_downs=(*others, ScaleDown(revision, scale_down_at(d, seconds))))


def end_rollout(d: Draft, outcome: Outcome) -> None:
    """Stop the running rollout (superseded, reverted, or its stable revision lost) without an abort."""
    retire(d, d.state.canary)
    d.transition(outcome, **CLEARED_ROLLOUT)


def abort(d: Draft, reason: AbortReason, message: str, actor: str = "") -> None:
    state = d.state
    revision, stage = d.current, state.stage
    live = stage in (Stage.CANARY, Stage.POST_PROMOTION) and (
        state.canary_weight > 0 or bool(state.header_routes) or d.switched()
    )
    retire(d, state.canary)
    d.transition(Outcome.ABORTED, abort=Abort(revision, reason, message, d.now, actor), **CLEARED_ROLLOUT)
    d.unpause(*ALL_PAUSES)
    d.record(HistoryAction.ABORTED, revision, f"{reason} in stage {stage}: {message}", actor)
    where = "all traffic is back on" if live else "it never served live traffic; all traffic stays on"
    if live and returns_gradually(d):
        where = "traffic moves back, as fast as its pods become available (dynamicStableScale), to"
    d.emit(
        EventReason.ABORTED,
        f"revision {revision} aborted in stage {stage} ({reason}): {message}; {where} stable revision {state.stable}",
        EventType.WARNING,
    )
    d.tell(HookPoint.ON_ROLLBACK, {"reason": reason.value, "message": message}, revision=revision)
    d.aborted = reason


def promote(d: Draft) -> None:
    state = d.state
    previous, promoted = state.stable, state.canary
    approval = next((a for a in state.approvals if a.gate == Gate(GateKind.PROMOTION)), None)
    actor = approval.actor if approval else ""  # a person who approved the promotion decided it
    d.transition(Outcome.PROMOTED, stable=promoted, step=0, **CLEARED_ROLLOUT)
    d.unpause(*ROLLOUT_PAUSES)
    retire(d, previous, scale_down_delay(d))
    message = f"revision {promoted} (model {d.obs.spec.model.version}) promoted to stable, replacing {previous}"
    d.record(HistoryAction.PROMOTED, promoted, message, actor)
    d.emit(EventReason.PROMOTED, message)
    d.tell(HookPoint.POST_PROMOTION, revision=promoted)


def complete_step(d: Draft, message: str, **changes: object) -> None:
    d.unpause(PauseReason.STEP, PauseReason.INCONCLUSIVE)
    d.update(step=d.state.step + 1, step_started=d.step_start, **changes)
    d.record(HistoryAction.STEP_COMPLETED, d.state.canary, message)
    d.emit(EventReason.STEP_COMPLETED, message)


def run_key(d: Draft, kind: RunKind) -> str:
    suffix = f"step-{d.state.step}" if kind is RunKind.STEP else kind.value
    return f"{d.state.canary}-{suffix}"


def run_analysis(d: Draft, kind: RunKind, ref: AnalysisRef) -> tuple[str, str]:
    """Advance the run of `kind` with this decision's measurements; returns (phase, message)."""
    key, revision = run_key(d, kind), d.state.canary
    d.analysis_runs.append(AnalysisRun(key, revision, ref, kind))
    given = d.obs.analysis.get(key)
    if given is None:
        return runs.RUNNING, "waiting for the analysis to start"
    if given.error:
        return runs.ERROR, given.error
    before = d.state.run(key)
    run = runs.advance(before, key, revision, given.metrics, given.measurements, d.now)
    d.update(runs=(*(r for r in d.state.runs if r.get("key") != key), run))
    _report_measured(d, before, run, given)
    wait = runs.seconds_until_due(run, given.metrics, d.now, given.pending)
    if wait is not None:
        d.requeue.append(max(wait, SHORTEST_INTERVAL_SECONDS))  # never a hot loop on a measurement due now
    return run["phase"], run.get("message", "")


def _report_measured(d: Draft, before, run, given: AnalysisInput) -> None:
    counts = {m["name"]: m["count"] for m in (before or {}).get("metrics", [])}
    specs = {metric.name: metric for metric in given.metrics}
    for metric in run.get("metrics", []):
        if metric["count"] > counts.get(metric["name"], 0):
            value = getattr(given.measurements.get(metric["name"]), "value", None)
            number = float(value) if isinstance(value, int | float) else None
            phase = metric["measurements"][-1]["phase"]
            d.measured.append(MeasuredMetric(metric["name"], phase, number, _condition(specs.get(metric["name"]))))


def _condition(metric: MetricSpec | None) -> str:
    if metric is None:
        return ""
    judged = [("successCondition", metric.success_condition), ("failureCondition", metric.failure_condition)]
    return ", ".join(f"{kind} {text}" for kind, text in judged if text)


def judge(d: Draft, phase: str, message: str, label: str) -> bool:
    """Act on an analysis run's phase; True when the rollout may go on."""
    if phase == runs.SUCCESSFUL:
        return True
    if phase == runs.ERROR:
        abort(d, AbortReason.ANALYSIS_INVALID, f"{label}: {message}")
    elif phase == runs.FAILED:
        abort(d, AbortReason.ANALYSIS_FAILED, f"{label}: {message}")
    elif phase == runs.INCONCLUSIVE:
        d.pause(PauseReason.INCONCLUSIVE, message)
        d.hold(
            PauseReason.INCONCLUSIVE,
            f"{label} inconclusive: {message}; run it again, skip it or stop "
            f"(kubectl modelrollout retry-analysis|promote|abort {d.obs.meta.name})",
        )
    else:
        d.wait(f"{label}: {message}")
    return False
