"""`decide`: one rollout decision, from an observation to the desired cluster and status.

Rules:
- Pure: reads only its `Observation` (time included) and returns a `Decision`.
- Order of one decision: make sure a stable revision exists; follow the spec (start, supersede,
  revert; with `dynamicStableScale` a new rollout starts once the revision traffic left has drained);
  handle a manual request; bring an undo home; then, while the spec's revision is being rolled out,
  the safety checks that hold in every stage (progress deadline, firing alarm, a person's pause),
  then the stage's own progress. Stages may follow one another in one decision.
- Deciding twice on the same observation gives the same decision, and a restarted operator decides
  from the persisted status alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from modelrollout.core.enums import (
    AbortReason,
    EventReason,
    EventType,
    HistoryAction,
    PauseReason,
    Stage,
)
from modelrollout.core.observed import Observation
from modelrollout.core.rollout import bluegreen, canary, lifecycle, plan, requests, shadow
from modelrollout.core.rollout.decision import Decision
from modelrollout.core.rollout.draft import Draft
from modelrollout.core.rollout.state import load_state
from modelrollout.core.rollout.status import status
from modelrollout.core.rollout.transitions import Outcome
from modelrollout.core.spec import ModelDeploymentSpec

STAGE_MOVES: dict[Stage, Callable[[Draft], None]] = {
    Stage.SHADOW: shadow.advance,
    Stage.CANARY: canary.advance,
    Stage.PREVIEW: bluegreen.advance_preview,
    Stage.PROMOTING: bluegreen.advance_promoting,
    Stage.POST_PROMOTION: bluegreen.advance_post_promotion,
}


def rollout_running(spec: ModelDeploymentSpec, status: Mapping[str, Any]) -> bool:
    """Whether alarms matter now: a rollout runs, or the spec asks for a revision that is not stable yet."""
    return bool(status.get("canaryRevision")) or spec.revision != status.get("stableRevision", "")


def decide(observation: Observation) -> Decision:
    spec = observation.spec
    steps = spec.canary.steps if spec.canary else ()
    mirror = spec.shadow.mirror_percent if spec.shadow else 0
    d = Draft(observation, load_state(observation.status, steps, mirror))
    _run(d)
    route = plan.route_weights(d)
    recorded = plan.canary_route(d, route)
    desired, deleted = plan.deployments(d, recorded)
    weights = plan.reported_weights(d, route)
    wanted = plan.services(d)
    stale_services = plan.stale_services(d, wanted)
    written = d.state.router_written
    d.update(router_written=spec.router, canary_route=recorded)
    active, preview = plan.active_revision(d), plan.preview_revision(d)
    body = status(d, weights, active, preview)
    return Decision(
        deployments=tuple(desired),
        delete_revisions=tuple(deleted),
        stable_revision=d.state.stable,
        canary_revision=d.state.canary if d.canary_active() else "",
        weights=weights,
        status=body,
        events=tuple(d.events),
        requeue_after=min(d.requeue) if d.requeue else None,
        analysis_runs=tuple(dict.fromkeys(d.analysis_runs)),
        active_revision=active,
        preview_revision=preview,
        route_weights=route,
        header_routes=plan.header_routes(d),
        affinity=plan.affinity(d, route),
        tracks=plan.tracks(d),
        router=spec.router,
        services=wanted,
        stale_services=stale_services,
        stale_router=written if written is not None and written != spec.router else None,
        measurements=tuple(d.measured),
        aborted=d.aborted,
        hook_calls=tuple(d.hook_calls),
        hook_notices=tuple(d.hook_notices),
    )


def _run(d: Draft) -> None:
    state = d.state
    if not state.stable or (d.deployment(state.stable) is None and state.stable != d.current):
        if state.stable:
            d.emit(
                EventReason.STABLE_MISSING,
                f"the Deployment of stable revision {state.stable} is gone; serving revision {d.current} directly",
                EventType.WARNING,
            )
        if state.stage is not Stage.IDLE:
            d.transition(Outcome.STABLE_LOST, **lifecycle.CLEARED_ROLLOUT)
        d.update(stable=d.current, canary="", canary_weight=0, step=0)
    _follow_spec(d)
    request = d.obs.request
    if request is not None and (d.state.last_request is None or request.id != d.state.last_request.id):
        requests.handle(d, request)
    if _advance_rollback(d):
        _follow_spec(d)  # a revision the spec asked for meanwhile starts in the same decision
    if d.canary_active():
        _advance(d)


def _follow_spec(d: Draft) -> None:
    state = d.state
    if d.current == state.stable:
        if state.rollback_to:
            return  # an undo is bringing an older revision back; the spec's revision stays held
        if state.canary:
            reverted = state.canary
            lifecycle.end_rollout(d, Outcome.REVERTED)
            d.record(HistoryAction.REVERTED, reverted, "the spec went back to the stable revision")
            d.emit(
                EventReason.REVERTED,
                f"spec is back at stable revision {state.stable}: canary {reverted} aborted without steps",
            )
        d.update(abort=None)
        d.unpause(*lifecycle.ALL_PAUSES)
        return
    if d.held():
        if state.canary:
            lifecycle.end_rollout(d, Outcome.SUPERSEDED)
        return
    if state.canary != d.current and not state.rollback_to:
        if state.canary:
            superseded = state.canary
            lifecycle.end_rollout(d, Outcome.SUPERSEDED)
            d.record(HistoryAction.SUPERSEDED, superseded, f"superseded by revision {d.current}")
            d.emit(EventReason.SUPERSEDED, f"canary {superseded} superseded by revision {d.current}")
        if not lifecycle.waits_for_drain(d):
            lifecycle.start(d, d.current)


def _advance_rollback(d: Draft) -> bool:
    """Bring an undo's revision home; True when the rollback ended in this decision."""
    target = d.state.rollback_to
    if not target:
        return False
    deployment = d.deployment(target)
    if target == d.state.stable or deployment is None:
        d.update(rollback_to="")
        return True
    if not deployment.settled_at(d.replicas):
        d.wait(f"rolling back to revision {target}: {deployment.available_replicas}/{d.replicas} pods available")
        return False
    previous = d.state.stable
    d.update(stable=target, rollback_to="")
    lifecycle.retire(d, previous, lifecycle.scale_down_delay(d))
    d.record(HistoryAction.ROLLED_BACK, target, f"revision {target} serves again instead of {previous}")
    d.emit(EventReason.ROLLED_BACK, f"rolled back to revision {target}; revision {previous} is scaled down")
    return True


def _advance(d: Draft) -> None:
    """Safety checks that hold in every stage, then the stage's own progress."""
    canary_deployment = d.deployment(d.state.canary)
    # A deadline condition counts only once the controller has seen our latest scale, so a stale
    # condition from before a retry does not abort the new attempt.
    if (
        canary_deployment is not None
        and canary_deployment.progress_deadline_exceeded
        and canary_deployment.spec_replicas > 0
        and canary_deployment.observed_generation >= canary_deployment.generation
    ):
        lifecycle.abort(
            d,
            AbortReason.PROGRESS_DEADLINE,
            f"new pods made no progress for {d.obs.spec.progress_deadline_seconds}s "
            f"({canary_deployment.available_replicas} available)",
        )
        return
    if d.obs.firing_alerts:
        lifecycle.abort(d, AbortReason.ALERT_FIRING, f"alert {', '.join(d.obs.firing_alerts)} is firing")
        return
    refused = d.state.stage is Stage.SHADOW and d.shadow is not None and shadow.mirroring_refused(d)
    manual = d.state.pause_of(PauseReason.MANUAL)
    if manual is not None:
        d.hold(PauseReason.MANUAL, f"paused by {manual.message or 'a person'}")
        return
    if refused:
        return
    for _ in range(len(STAGE_MOVES) + 1):
        stage = d.state.stage
        STAGE_MOVES[stage](d)
        if d.state.stage is stage or not d.canary_active():
            return
