"""Blue/green: a preview beside the active revision, a switch of the active Service, a switch back on failure.

Rules:
- Preview: `previewReplicas` pods behind the preview Service; pre-promotion checks, then
  `autoPromotionSeconds` (counted from the preview being ready) or a person opens the promotion gate.
- The preview is ready (its time counting) once its pods are available and its `preRollout` hooks
  answered 2xx.
- Promoting: the new revision scales to full size, and `prePromotion` hooks answer 2xx; the active
  Service does not move before both.
- PostPromotion: the active Service selects the new revision (one write); the old one stays at full
  size, so a failing post-promotion check switches back at once. Success makes the new one stable.
"""

from __future__ import annotations

from datetime import timedelta

from modelrollout.core.durations import format_seconds
from modelrollout.core.enums import EventReason, GateKind, HistoryAction, PauseReason, RunKind
from modelrollout.core.hooks import HookPoint
from modelrollout.core.rollout import hookgates
from modelrollout.core.rollout.draft import Draft
from modelrollout.core.rollout.lifecycle import judge, promote, run_analysis
from modelrollout.core.rollout.state import Gate
from modelrollout.core.rollout.transitions import Outcome

PROMOTION_GATE = Gate(GateKind.PROMOTION)


def preview_replicas(d: Draft) -> int:
    bg = d.blue_green
    return d.replicas if bg is None or bg.preview_replicas is None else min(bg.preview_replicas, d.replicas)


def advance_preview(d: Draft) -> None:
    bg = d.blue_green
    if bg is None:  # the strategy changed to canary mid-preview: go on as a canary
        d.transition(Outcome.NOW_CANARY, step=0, step_started=d.step_start)
        return
    target = preview_replicas(d)
    if not d.canary_ready(target):
        d.wait(
            f"preview: waiting for {target} pods of revision {d.state.canary} ({d.available(d.state.canary)} available)"
        )
        return
    if d.state.step_started is None:
        if not hookgates.passed(d, HookPoint.PRE_ROLLOUT, "preview"):
            return
        d.update(step_started=d.step_start)
        message = f"preview of revision {d.state.canary} is ready with {target} pods behind the preview Service"
        d.record(HistoryAction.PREVIEW_READY, d.state.canary, message)
        d.emit(EventReason.PREVIEW_READY, message)
    if d.state.approved(PROMOTION_GATE):
        _start_promoting(d, "promoted by a person")
        return
    outcome = ""
    if bg.pre_promotion is not None:
        phase, message = run_analysis(d, RunKind.PRE_PROMOTION, bg.pre_promotion)
        if not judge(d, phase, message, "pre-promotion analysis"):
            return
        outcome = f"pre-promotion analysis passed: {message}"
    if bg.auto_promotion_seconds is not None:
        started = d.state.step_started or d.now
        remaining = (started + timedelta(seconds=bg.auto_promotion_seconds) - d.now).total_seconds()
        if remaining > 0:
            d.requeue.append(remaining)
            d.wait(f"preview ready; switching automatically in {format_seconds(remaining)}")
            return
    if not d.gate(PROMOTION_GATE, "preview ready" + (f", {outcome}" if outcome else "")):
        return
    _start_promoting(d, outcome or "preview ready")


def _start_promoting(d: Draft, message: str) -> None:
    d.transition(Outcome.PREVIEW_APPROVED, step_started=d.step_start)
    d.unpause(PauseReason.APPROVAL, PauseReason.INCONCLUSIVE)
    d.record(HistoryAction.PROMOTING, d.state.canary, f"{message}; scaling to {d.replicas} pods for the switch")


def advance_promoting(d: Draft) -> None:
    if not d.canary_ready(d.replicas):
        d.wait(
            f"promoting: scaling revision {d.state.canary} to {d.replicas} pods "
            f"({d.available(d.state.canary)} available)"
        )
        return
    if not hookgates.passed(d, HookPoint.PRE_PROMOTION, "promoting: the switch", weight=100):
        return
    d.transition(Outcome.SCALED_UP, step_started=d.step_start)
    message = (
        f"active Service switched to revision {d.state.canary}; "
        f"revision {d.state.stable} kept at {d.replicas} pods for a switch back"
    )
    d.record(HistoryAction.SWITCHED, d.state.canary, message)
    d.emit(EventReason.SWITCHED, message)


def advance_post_promotion(d: Draft) -> None:
    bg = d.blue_green
    if bg is not None and bg.post_promotion is not None and not d.state.approved(Gate(GateKind.POST_PROMOTION)):
        phase, message = run_analysis(d, RunKind.POST_PROMOTION, bg.post_promotion)
        if not judge(d, phase, message, "post-promotion analysis"):
            return
    promote(d)
