"""The shadow stage: the new revision gets a mirrored copy of live traffic; its answers are discarded.

Rules:
- Mirroring starts only once the shadow's pods are available and its `preRollout` hooks answered
  2xx; `duration` counts from then.
- The stage ends when its duration has passed, its analysis has finished (a run whose metrics have
  no count runs for the whole stage) and the shadow gate is open; then the mirror is removed in the
  same decision that starts the canary or the blue/green preview.
- A shadow removed from the spec, or one its router cannot mirror, ends at once and says so.
- A mirror is never written to a data plane that does not declare it can mirror (unless the spec
  says `assumeMirroring`): Traefik's Gateway API, for one, would turn the whole route into 500s. The
  shadow then waits, mirroring nothing, with a pause that names the part of the data plane and says
  what to do; it goes on by itself once the data plane declares mirroring (re-checked periodically).
"""

from __future__ import annotations

from datetime import timedelta

from modelrollout.core import analysis as runs
from modelrollout.core.durations import format_seconds
from modelrollout.core.enums import (
    EventReason,
    EventType,
    GateKind,
    HistoryAction,
    PauseReason,
    ProgressReason,
    RunKind,
)
from modelrollout.core.hooks import HookPoint
from modelrollout.core.rollout import hookgates
from modelrollout.core.rollout.draft import Draft, canary_replicas_for
from modelrollout.core.rollout.lifecycle import judge, run_analysis, run_key
from modelrollout.core.rollout.state import Gate
from modelrollout.core.rollout.transitions import Outcome

SHADOW_GATE = Gate(GateKind.SHADOW)
RECHECK_DATA_PLANE_SECONDS = 30.0


def mirroring_refused(d: Draft) -> bool:
    """Hold the shadow, mirroring nothing, while the data plane does not declare it can mirror.

    A wait on the data plane, not on a person (phase Progressing, reason MirrorUnsupported): the shadow
    starts by itself once the data plane declares mirroring. Checked before a person's pause, since
    removing a mirror moves traffic away from the new model. The Events say when this starts and ends,
    once each (`mirror_refused` records since when it is refused).
    """
    undeclared = () if d.obs.spec.assumes_mirroring else d.obs.mirroring_undeclared
    if not undeclared:
        if d.state.mirror_refused is not None:
            d.update(mirror_refused=None)
            d.emit(EventReason.MIRROR_DECLARED, "the data plane now declares mirroring; the shadow starts")
        return False
    message = (
        f"not mirroring to revision {d.state.canary}: {'; '.join(undeclared)}. A data plane that cannot mirror "
        "may fail every request of a route with a mirror. Use a data plane that mirrors, remove strategy.shadow, "
        "or set trafficRouting.gatewayAPI.assumeMirroring: true if it mirrors without declaring it"
    )
    if d.state.mirror_refused is None:
        d.update(mirror_refused=d.now)
        d.emit(EventReason.MIRROR_UNSUPPORTED, message, EventType.WARNING)
    d.update(mirror_percent=0, step_started=None)
    d.wait(message, ProgressReason.MIRROR_UNSUPPORTED)
    d.requeue.append(RECHECK_DATA_PLANE_SECONDS)
    return True


def advance(d: Draft) -> None:
    shadow = d.shadow
    if shadow is None:
        _finish(d, "shadow ended: the spec no longer asks for it, or its router cannot mirror")
        return
    label = f"shadow ({shadow.mirror_percent}% mirrored)"
    needed = canary_replicas_for(shadow.mirror_percent, d.replicas)
    if not d.canary_ready(needed):
        d.wait(f"{label}: waiting for {needed} shadow pods to be available ({d.available(d.state.canary)} now)")
        return
    if d.state.step_started is None:
        if not hookgates.passed(d, HookPoint.PRE_ROLLOUT, label):
            return
        d.update(mirror_percent=shadow.mirror_percent, step_started=d.step_start)
        message = f"mirroring {shadow.mirror_percent}% of live traffic to revision {d.state.canary}; answers discarded"
        d.record(HistoryAction.SHADOW_STARTED, d.state.canary, message)
        d.emit(EventReason.SHADOW_STARTED, message)
    elif d.state.mirror_percent != shadow.mirror_percent:
        d.update(mirror_percent=shadow.mirror_percent)  # the spec changed it; its pods are ready for it
    if d.state.approved(SHADOW_GATE):
        _finish(d, "shadow ended by a person")
        return
    outcome, analysed = "", True
    if shadow.analysis is not None:
        phase, outcome = run_analysis(d, RunKind.SHADOW, shadow.analysis)
        if phase not in (runs.RUNNING, runs.SUCCESSFUL):
            judge(d, phase, outcome, f"{label} analysis")
            return
        analysed = phase == runs.SUCCESSFUL or _open_ended(d)
    started = d.state.step_started or d.now
    if shadow.duration is not None:
        remaining = (started + timedelta(seconds=shadow.duration) - d.now).total_seconds()
        if remaining > 0:
            d.requeue.append(remaining)
            d.wait(f"{label}: {format_seconds(remaining)} left" + (f"; {outcome}" if outcome else ""))
            return
    if not analysed:
        d.wait(f"{label}: waiting for the analysis to finish: {outcome}")
        return
    if not d.gate(SHADOW_GATE, f"{label} done" + (f" ({outcome})" if outcome else "")):
        return
    _finish(d, f"shadow done{': ' + outcome if outcome else ''}")


def _open_ended(d: Draft) -> bool:
    """A run whose metrics have no count runs for as long as its stage; it never finishes by itself."""
    given = d.obs.analysis.get(run_key(d, RunKind.SHADOW))
    return given is not None and bool(given.metrics) and all(metric.count == 0 for metric in given.metrics)


def _finish(d: Draft, message: str) -> None:
    if d.blue_green is not None:
        d.transition(Outcome.SHADOW_DONE_BLUE_GREEN, mirror_percent=0, step_started=None, mirror_refused=None)
    else:
        skip_all = d.state.approved(Gate(GateKind.FULL))
        step = len(d.steps) if skip_all else 0
        d.transition(Outcome.SHADOW_DONE, mirror_percent=0, step=step, step_started=d.step_start, mirror_refused=None)
    d.unpause(PauseReason.APPROVAL, PauseReason.INCONCLUSIVE)
    text = f"revision {d.state.canary}: {message}; mirror removed, next stage {d.state.stage}"
    d.record(HistoryAction.SHADOW_COMPLETED, d.state.canary, text)
    d.emit(EventReason.SHADOW_COMPLETED, text)
