"""Status: the persisted state, what was observed beside it, and the phase and conditions of a typed outcome.

Rules:
- The phase comes from what the decision found (held back, a stalled stable, a `Wait`, pods), never
  from message text; conditions follow kstatus (Ready, Reconciling, Stalled) plus ours.
- A phase change to Healthy, Paused or Degraded is also an Event.
- When the apiserver rejects what the spec asks for, the previous status is kept (the stable model
  keeps serving) and only phase, message and conditions say so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modelrollout.core import conditions as cond
from modelrollout.core.conditions import Condition
from modelrollout.core.enums import EventReason, EventType, PauseReason, Phase, ProgressReason, Stage
from modelrollout.core.labels import DEPLOYMENT_LABEL
from modelrollout.core.rollout.decision import Event, Weights
from modelrollout.core.rollout.draft import Draft
from modelrollout.core.rollout.state import dump_state

Reason = PauseReason | ProgressReason | str


def phase_of(d: Draft) -> tuple[Phase, Reason, str]:
    state, spec = d.state, d.obs.spec
    stable = d.deployment(state.stable)
    if d.held() and state.abort is not None:
        abort, drain = state.abort, d.draining()
        serving = f"stable revision {state.stable} serves all traffic"
        if drain is not None:
            serving = f"stable revision {state.stable} takes all traffic as its pods come up: {drain.describe()}"
        return (
            Phase.DEGRADED,
            abort.reason,
            f"revision {d.current} is not rolled out ({abort.reason}: {abort.message}); {serving}. Change the "
            f"spec, or run `kubectl modelrollout retry {d.obs.meta.name}` to roll {d.current} out again",
        )
    if stable is not None and stable.progress_deadline_exceeded and not d.canary_active():
        return (
            Phase.DEGRADED,
            ProgressReason.PROGRESS_DEADLINE,
            f"revision {state.stable} made no progress for {spec.progress_deadline_seconds}s: "
            f"{stable.ready_replicas}/{d.replicas} pods ready",
        )
    for wait in (d.paused, d.progress):
        if wait is not None:
            return wait.phase, wait.reason, wait.message
    if stable is None:
        return Phase.PENDING, ProgressReason.CREATING, f"creating the Deployment of revision {state.stable}"
    if not stable.settled_at(d.replicas):
        return (
            Phase.PROGRESSING,
            ProgressReason.WAITING_FOR_PODS,
            f"waiting for revision {state.stable}: {stable.available_replicas}/{d.replicas} pods available",
        )
    return (
        Phase.HEALTHY,
        ProgressReason.AVAILABLE,
        f"revision {state.stable} (model {spec.model.name} {spec.model.version}) serves with {d.replicas} pods ready",
    )


def status(d: Draft, weights: Weights, active_revision: str, preview_revision: str) -> dict[str, Any]:
    state, meta = d.state, d.obs.meta
    stable = d.deployment(state.stable)
    current = d.deployment(d.current)
    phase, reason, message = phase_of(d)
    if state.scale_downs and phase is Phase.HEALTHY:
        message += f"; scaling down {', '.join(sorted(item.revision for item in state.scale_downs))}"
    drain = d.draining()
    if drain is not None and drain.revision != state.canary and reason is not ProgressReason.DRAINING and not d.held():
        message += f"; {drain.describe()}"
    previous = d.obs.status
    if previous.get("phase") != phase and phase in (Phase.HEALTHY, Phase.DEGRADED, Phase.PAUSED):
        d.emit(EventReason.of_phase(phase), message, EventType.WARNING if phase is Phase.DEGRADED else EventType.NORMAL)
    body = dump_state(state, d.canary_active())
    body.update(
        {
            "observedGeneration": meta.generation,
            "phase": phase.value,
            "message": message,
            "currentRevision": d.current,
            "step": step_shown(d),
            "activeRevision": active_revision,
            "previewRevision": preview_revision or None,
            "weights": {"stable": weights.stable, "canary": weights.canary, "mirror": weights.mirror},
            # The scale subresource: every pod of every revision, so an HPA averages over the pods that share
            # the load and multiplies by their number (the stable alone carries only its share mid-rollout).
            "replicas": sum(deployment.replicas for deployment in d.obs.deployments),
            "readyReplicas": stable.ready_replicas if stable else 0,
            "updatedReplicas": current.updated_replicas if current else 0,
            "selector": f"{DEPLOYMENT_LABEL}={meta.name}",
            "conditions": cond.merge_conditions(
                previous.get("conditions") or [], conditions_for(phase, str(reason), message), meta.generation, d.now
            ),
        }
    )
    return body


def step_shown(d: Draft) -> str:
    """The canary step as people count it ("2/4", 1-based), for `kubectl get`; empty outside the canary's steps."""
    steps = d.steps
    if d.state.stage is not Stage.CANARY or not d.canary_active() or not steps:
        return ""
    return f"{min(d.state.step, len(steps) - 1) + 1}/{len(steps)}"


def conditions_for(phase: Phase, reason: str, message: str) -> list[Condition]:
    """The kstatus conditions (Ready, Reconciling, Stalled) and ours (Progressing, Paused, Degraded) of a phase."""
    converging = phase in (Phase.PENDING, Phase.PROGRESSING, Phase.PAUSED)
    progressing = phase in (Phase.PENDING, Phase.PROGRESSING)

    def flag(kind: str, active: bool, inactive_reason: str) -> Condition:
        return Condition(kind, active, reason if active else inactive_reason, message if active else "")

    return [
        Condition(cond.READY, phase is Phase.HEALTHY, reason, message),
        flag(cond.RECONCILING, converging, "Reconciled"),
        flag(cond.STALLED, phase is Phase.DEGRADED, "NotStalled"),
        Condition(cond.PROGRESSING, progressing, reason, message if progressing else ""),
        flag(cond.PAUSED, phase is Phase.PAUSED, "NotPaused"),
        flag(cond.DEGRADED, phase is Phase.DEGRADED, "NotDegraded"),
    ]


def invalid_status(
    meta_generation: int, previous: dict[str, Any], message: str, now: datetime
) -> tuple[dict[str, Any], tuple[Event, ...]]:
    """Status when the apiserver rejects what the spec asks for: stalled until the spec changes.

    Everything else in the previous status (stable revision, selector, weights) is kept: the stable
    model keeps serving.
    """
    reason = ProgressReason.INVALID_SPEC
    desired = conditions_for(Phase.DEGRADED, reason, message)
    status = dict(previous)
    status.update(
        {
            "observedGeneration": meta_generation,
            "phase": Phase.DEGRADED.value,
            "message": message,
            "conditions": cond.merge_conditions(previous.get("conditions") or [], desired, meta_generation, now),
        }
    )
    changed = previous.get("message") != message or previous.get("phase") != Phase.DEGRADED
    return status, ((Event(EventType.WARNING, EventReason.INVALID_SPEC, message),) if changed else ())
