"""Manual requests (promote, promote-full, abort, retry, retry-analysis, pause, resume, undo): each accepted
or refused.

Rules:
- A request is handled once (by its id), answered in `lastRequest`, recorded in history with its
  actor when accepted, and never silently ignored.
- `promote` passes what the rollout waits at now: a gate, an inconclusive check, a pause, a stage.
  It never moves traffic ahead of available pods: a setWeight step waiting for its pods is refused,
  and a person's own pause survives the refusal. Passing an inconclusive check says it skips the check,
  not that the check passed, and is recorded so; `retry-analysis` runs the check again instead.
  The same holds for a gating hook that failed with `onFailure: pause`: promote skips it (recorded
  as Skipped), retry-analysis calls it again.
"""

from __future__ import annotations

from collections.abc import Callable

from modelrollout.core import analysis as runs
from modelrollout.core.enums import (
    AbortReason,
    EventReason,
    EventType,
    GateKind,
    PauseReason,
    RequestAction,
    RunKind,
    Stage,
)
from modelrollout.core.headerroutes import SetHeaderRoute
from modelrollout.core.observed import Request
from modelrollout.core.rollout import hookgates, lifecycle
from modelrollout.core.rollout.draft import Draft
from modelrollout.core.rollout.state import Abort, Approval, Gate, RequestAnswer
from modelrollout.core.spec import SetWeight

Answer = tuple[bool, str]


def handle(d: Draft, request: Request) -> None:
    action = RequestAction.parse(request.action)
    handler = HANDLERS.get(action) if action else None
    accepted, message = handler(d, request) if handler else (False, f"unknown action {request.action!r}")
    actor = request.actor or "unknown"
    d.update(last_request=RequestAnswer(request.id, request.action, actor, accepted, message, d.now))
    if accepted and action is not None:
        d.record(action, d.current, message, actor)
        d.emit(EventReason.manual(action), f"{message} (by {actor})")
    else:
        d.emit(EventReason.REQUEST_REJECTED, f"{request.action} by {actor} rejected: {message}", EventType.WARNING)


def _approve(d: Draft, gate: Gate, request: Request) -> None:
    if not d.state.approved(gate):
        d.update(approvals=(*d.state.approvals, Approval(gate, request.actor or "unknown", d.now)))


def _promote(d: Draft, request: Request) -> Answer:
    inconclusive = _inconclusive_runs(d)  # before passing: a background run judged by a person is reset
    accepted, message = _pass(d, request)
    if accepted and inconclusive and request.action == RequestAction.PROMOTE:
        names = ", ".join(sorted(run["key"] for run in inconclusive))
        message += f"; the inconclusive analysis {names} is skipped, not passed (retry-analysis runs it again)"
    return accepted, message


def _inconclusive_runs(d: Draft) -> list[dict]:
    """The analysis runs of the running rollout that ended inconclusive and wait for a person."""
    return [
        run for run in d.state.runs if run.get("phase") == runs.INCONCLUSIVE and run.get("revision") == d.state.canary
    ]


def _retry_analysis(d: Draft, request: Request) -> Answer:
    if not d.canary_active():
        return False, "no rollout in progress"
    if hookgates.failed(d):
        names = ", ".join(hookgates.call_again(d))
        return True, f"revision {d.state.canary}: hook {names} is called again from its first attempt"
    inconclusive = _inconclusive_runs(d)
    if not inconclusive:
        return False, "no analysis is inconclusive and no hook failed: nothing to run again"
    keys = {run["key"] for run in inconclusive}
    d.update(runs=tuple(run for run in d.state.runs if run.get("key") not in keys))
    d.unpause(PauseReason.INCONCLUSIVE)
    names = ", ".join(sorted(keys))
    return True, f"revision {d.state.canary}: analysis {names} runs again from its first measurement"


def _pass(d: Draft, request: Request) -> Answer:
    """What `promote` passes: the gate, pause, stage or step the rollout waits at now."""
    state = d.state
    if not d.canary_active():
        return False, "no rollout in progress"
    approval = state.pause_of(PauseReason.APPROVAL)
    waiting_gate = approval.gate if approval else None
    pauses_before = state.pauses
    skipped = ", ".join(hookgates.skip_failed(d)) if hookgates.failed(d) else ""
    if skipped and request.action == RequestAction.PROMOTE:
        return True, f"revision {state.canary}: failed hook {skipped} skipped, not passed"
    d.unpause(*lifecycle.ALL_PAUSES)
    steps = d.steps
    if request.action == RequestAction.PROMOTE_FULL:
        for kind in (GateKind.SHADOW, GateKind.PROMOTION, GateKind.POST_PROMOTION, GateKind.FULL):
            _approve(d, Gate(kind), request)
        if state.stage is Stage.CANARY:
            # A route a skipped step would remove or change is removed: less traffic to the canary is always
            # safe, more would wait for the hooks promote-full does not skip (the promotion ends them all).
            touched = {step.name for step in steps[state.step :] if isinstance(step, SetHeaderRoute)}
            routes = tuple(route for route in state.header_routes if route.name not in touched)
            d.update(step=len(steps), step_started=d.step_start, header_routes=routes)
        return True, f"revision {state.canary}: skipping all remaining steps, gates and checks"
    if waiting_gate is not None:
        _approve(d, waiting_gate, request)
        return True, f"revision {state.canary}: gate {waiting_gate} approved"
    match state.stage:
        case Stage.SHADOW:
            _approve(d, Gate(GateKind.SHADOW), request)
            return True, f"revision {state.canary}: shadow stage ended early"
        case Stage.PREVIEW:
            _approve(d, Gate(GateKind.PROMOTION), request)
            return True, f"revision {state.canary}: switching the active Service"
        case Stage.PROMOTING:
            return True, f"revision {state.canary}: already promoting"
        case Stage.POST_PROMOTION:
            _approve(d, Gate(GateKind.POST_PROMOTION), request)
            return True, f"revision {state.canary}: post-promotion checks skipped"
    background_key = lifecycle.run_key(d, RunKind.BACKGROUND)
    background = state.run(background_key)
    if background is not None and background.get("phase") == runs.INCONCLUSIVE:
        # A person judged the inconclusive background checks: they start afresh.
        d.update(runs=tuple(run for run in d.state.runs if run.get("key") != background_key))
        if not steps or state.step >= len(steps):
            return True, f"revision {state.canary}: background analysis restarted"
        return True, f"revision {state.canary}: inconclusive background analysis accepted, checks restart"
    if state.step >= len(steps):
        return True, f"revision {state.canary}: already promoting"
    step = steps[state.step]
    if isinstance(step, SetWeight) and step.weight > state.canary_weight:
        # Traffic never goes ahead of available pods, not even on a person's word: abort instead.
        d.update(pauses=pauses_before)
        return False, (
            f"revision {state.canary}: step {state.step + 1} ({step.describe()}) moves traffic as soon as its pods "
            "are available; it cannot be skipped (abort to stop the rollout)"
        )
    d.update(step=state.step + 1, step_started=d.step_start)
    return True, f"revision {state.canary}: step {d.state.step}/{len(steps)} ({step.describe()}) promoted"


def _abort(d: Draft, request: Request) -> Answer:
    if not d.canary_active():
        return False, "no rollout in progress"
    revision, gradually = d.state.canary, lifecycle.returns_gradually(d)
    lifecycle.abort(d, AbortReason.ABORTED, f"aborted by {request.actor or 'a person'}", request.actor)
    if gradually:
        return True, f"revision {revision} aborted; traffic moves back to {d.state.stable} as its pods become available"
    return True, f"revision {revision} aborted; traffic is back on {d.state.stable}"


def _retry(d: Draft, request: Request) -> Answer:
    if not d.held():
        return False, "nothing to retry: the spec's revision is not aborted"
    drain = d.draining()
    if drain is not None:
        return False, f"{drain.describe()} (dynamicStableScale); retry once it has drained"
    d.update(abort=None)
    lifecycle.start(d, d.current)
    return True, f"revision {d.current} restarts from step 1"


def _pause(d: Draft, request: Request) -> Answer:
    if not d.canary_active():
        return False, "no rollout in progress"
    d.pause(PauseReason.MANUAL, request.actor or "a person")
    return True, f"revision {d.state.canary} paused at step {d.state.step + 1}"


def _resume(d: Draft, request: Request) -> Answer:
    if d.state.pause_of(PauseReason.MANUAL) is None:
        return False, "not paused by a person"
    d.unpause(PauseReason.MANUAL)
    return True, f"revision {d.state.canary} resumed"


def _undo(d: Draft, request: Request) -> Answer:
    state = d.state
    target = request.revision or (state.stable if d.canary_active() else _previous_revision(d))
    if not target:
        return False, "no earlier revision is retained (see revisionHistoryLimit)"
    if target == d.current and target != state.stable:
        return False, f"revision {target} is what the spec asks for: use retry"
    if target != state.stable and d.deployment(target) is None:
        return False, f"revision {target} is not retained (see revisionHistoryLimit)"
    actor = request.actor or "a person"
    if d.canary_active():
        lifecycle.abort(d, AbortReason.ROLLED_BACK, f"undo by {actor}", request.actor)
    if target == d.state.stable:
        return True, f"revision {d.current} rolled back; {target} serves all traffic"
    d.update(rollback_to=target)
    if d.current != target and not d.held():
        d.update(abort=Abort(d.current, AbortReason.ROLLED_BACK, f"undo by {actor}", d.now, request.actor))
    return True, f"rolling back to revision {target} without steps"


def _previous_revision(d: Draft) -> str:
    candidates = sorted(
        (dep for dep in d.obs.deployments if dep.revision not in (d.state.stable, d.current)),
        key=lambda dep: dep.created,
        reverse=True,
    )
    return candidates[0].revision if candidates else ""


HANDLERS: dict[RequestAction, Callable[[Draft, Request], Answer]] = {
    RequestAction.PROMOTE: _promote,
    RequestAction.PROMOTE_FULL: _promote,
    RequestAction.ABORT: _abort,
    RequestAction.RETRY: _retry,
    RequestAction.RETRY_ANALYSIS: _retry_analysis,
    RequestAction.PAUSE: _pause,
    RequestAction.RESUME: _resume,
    RequestAction.UNDO: _undo,
}
