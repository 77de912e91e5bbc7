"""The canary stage: walk the steps, each gated, then promote once the canary has every pod.

Rules:
- A setWeight step that raises the weight completes only once the canary's pods for that weight are
  available (without a router, also once the stable gave up the rest); its weight becomes intent
  then, never earlier. A step that lowers the weight completes at once: less traffic is always safe.
- A `pause: {}` waits for a person at every automation level; a timed pause counts from the step's start.
- A setCanaryScale step completes at once: it changes how many pods the canary runs from then on (the
  plan never gives it fewer than its share needs), not its traffic.
- An experiment step raises the weight like a setWeight (pods, hooks), then holds it for its duration
  while its analysis compares the two revisions; it completes once the duration is over and the
  analysis succeeded, and a failed analysis aborts at once. Its weight stays after it.
- A setHeaderRoute step that adds a route sends requests to the canary: like a raised weight, it
  completes once a canary pod is available and the hooks before traffic passed. One that removes a
  route completes at once.
- Background checks run from `startingStep` on; a failure aborts, inconclusive waits for a person.
- Gating hooks sit right before traffic moves, once the pods for it are available: `preRollout` and
  `preTrafficIncrease` before a step raises the weight or adds a header route, `prePromotion` before
  the promotion (which also counts as the first traffic when no step raised the weight).
"""

from __future__ import annotations

from datetime import timedelta

from modelrollout.core import analysis as runs
from modelrollout.core.durations import format_seconds
from modelrollout.core.enums import GateKind, HistoryAction, PauseReason, RunKind
from modelrollout.core.headerroutes import HeaderRoute, SetHeaderRoute
from modelrollout.core.hooks import HookPoint
from modelrollout.core.rollout import hookgates
from modelrollout.core.rollout.draft import Draft
from modelrollout.core.rollout.lifecycle import complete_step, judge, promote, run_analysis
from modelrollout.core.rollout.state import Gate
from modelrollout.core.spec import AnalysisRef, AnalysisStep, Experiment, Pause, SetCanaryScale, SetWeight


def advance(d: Draft) -> None:
    while d.canary_active():
        # Checked before every step: a step completed in this decision may reach `startingStep`.
        if not _background_analysis(d):
            return
        state, steps = d.state, d.steps
        if state.step >= len(steps):
            if d.gate(Gate(GateKind.PROMOTION), "all steps done, promotion to 100%"):
                _promote_when_ready(d)
            return
        step = steps[state.step]
        label = f"step {state.step + 1}/{len(steps)} ({step.describe()})"
        waits_anyway = isinstance(step, Pause) and step.duration is None
        if not waits_anyway and not d.gate(d.step_gate(), label):
            return
        match step:
            case SetWeight(weight=weight):
                if weight > state.canary_weight and not _ready_for_traffic(d, label, d.canary_pods_for(weight), weight):
                    return
                complete_step(d, f"{label} done: canary weight {weight}%", canary_weight=weight)
            case Pause(duration=None):
                d.pause(PauseReason.STEP)
                d.hold(
                    PauseReason.STEP, f"{label}: waiting for a person (kubectl modelrollout promote {d.obs.meta.name})"
                )
                return
            case Pause(duration=duration):
                started = state.step_started or d.now
                remaining = (started + timedelta(seconds=duration) - d.now).total_seconds()
                if remaining > 0:
                    d.requeue.append(remaining)
                    d.wait(f"{label}: {format_seconds(remaining)} left at canary weight {state.canary_weight}%")
                    return
                complete_step(d, f"{label} done")
            case AnalysisStep(analysis=analysis):
                if not _analysis_step(d, analysis, label):
                    return
            case SetCanaryScale():
                scale = None if step.match_traffic_weight else step
                complete_step(d, f"{label} done", canary_scale=scale)
            case Experiment():
                if not _experiment(d, step, label):
                    return
            case SetHeaderRoute():
                needed = d.canary_pods_for(state.canary_weight, routed=True)
                if step.adds and not _ready_for_traffic(d, label, needed, state.canary_weight):
                    return
                routes = step.apply(state.header_routes)
                complete_step(d, f"{label} done: header routes {_names(routes)}", header_routes=routes)


def _background_analysis(d: Draft) -> bool:
    """Checks that run for the whole rollout; True while they do not stop it."""
    background = d.obs.spec.background
    if background is None or d.state.step < background.starting_step:
        return True
    phase, message = run_analysis(d, RunKind.BACKGROUND, background.analysis)
    if phase in (runs.RUNNING, runs.SUCCESSFUL):
        return True
    return judge(d, phase, message, "background analysis")


def _analysis_step(d: Draft, analysis: AnalysisRef | None, label: str) -> bool:
    """True when the step is done and the rollout may go on."""
    if analysis is None:
        complete_step(d, f"{label} has no templates")
        return True
    phase, message = run_analysis(d, RunKind.STEP, analysis)
    if judge(d, phase, message, label):
        complete_step(d, f"{label} succeeded: {message}")
        return True
    return False


def _hooks_before_traffic(d: Draft, label: str, weight: int) -> bool:
    """The first live traffic waits for `preRollout` hooks, every increase for `preTrafficIncrease` ones."""
    return hookgates.passed(d, HookPoint.PRE_ROLLOUT, label) and hookgates.passed(
        d, HookPoint.PRE_TRAFFIC_INCREASE, label, step=d.state.step, weight=weight
    )


def _experiment(d: Draft, step: Experiment, label: str) -> bool:
    """Raise the weight as a setWeight would, then hold it for the duration while the analysis judges both
    revisions; done once the duration is over and the analysis succeeded. A failure aborts at any time."""
    state = d.state
    if state.canary_weight < step.weight:
        if not _ready_for_traffic(d, label, d.canary_pods_for(step.weight), step.weight):
            return False
        d.update(canary_weight=step.weight, step_started=d.step_start)  # the experiment's clock starts with its split
        d.record(HistoryAction.EXPERIMENT_STARTED, state.canary, f"{label}: both revisions at {step.weight}%")
    phase, message = run_analysis(d, RunKind.STEP, step.analysis) if step.analysis else (runs.SUCCESSFUL, "")
    if phase not in (runs.RUNNING, runs.SUCCESSFUL):
        return judge(d, phase, message, label)
    remaining = (d.state.step_started + timedelta(seconds=step.duration) - d.now).total_seconds()
    judged = f": {message}" if message else ""
    if remaining > 0:
        d.requeue.append(remaining)
        d.wait(f"{label}: {format_seconds(remaining)} left at canary weight {step.weight}%{judged}")
        return False
    if phase == runs.RUNNING:
        d.wait(f"{label}: the time is up; waiting for the analysis{judged}")
        return False
    complete_step(d, f"{label} passed{judged or ': no templates'}")
    return True


def _ready_for_traffic(d: Draft, label: str, needed: int, weight: int) -> bool:
    """More traffic toward the canary (a weight, an experiment's split, a header route) waits for the
    canary's `needed` pods to be available, then for the hooks before traffic."""
    if not d.canary_ready(needed):
        d.wait(f"{label}: waiting for {needed} canary pods to be available ({d.available(d.state.canary)} now)")
        return False
    return _hooks_before_traffic(d, label, weight)


def _names(routes: tuple[HeaderRoute, ...]) -> str:
    return ", ".join(route.name for route in routes) if routes else "none"


def _promote_when_ready(d: Draft) -> None:
    if d.replicas > 0 and not d.canary_ready(d.replicas):
        d.wait(
            f"all steps done: scaling the canary to {d.replicas} pods before promotion "
            f"({d.available(d.state.canary)} now)"
        )
        return
    label = "all steps done, promotion to 100%"
    before = (HookPoint.PRE_ROLLOUT, HookPoint.PRE_PROMOTION)
    if not all(hookgates.passed(d, point, label, weight=100) for point in before):
        return
    promote(d)
