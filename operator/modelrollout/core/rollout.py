"""The rollout state machine: from an observation, the desired replicas, traffic and status.

Rules:
- Pure: `decide(observation)` reads only its argument (time included) and returns a `Decision`.
- The stable revision serves at full size until a new revision has taken over all traffic.
- Traffic moves to a canary only once its pods for that weight are available; traffic leaves a
  revision before the revision is scaled down (after a delay with a router; by the scale-down
  itself without one).
- Every fact needed to continue (stable, canary, step, when the step began, abort, pending
  scale-downs, pauses) is persisted in status, so a restarted operator resumes the same step.
- A new revision mid-rollout supersedes the canary (stable untouched); going back to the stable
  template aborts the canary at once; an aborted revision stays held (Degraded) until the spec
  changes or a person retries.
- Manual actions arrive as a `Request`; each is accepted or rejected, recorded in history and
  answered in `lastRequest`, never silently ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelrollout.core import analysis as runs
from modelrollout.core import conditions as cond
from modelrollout.core.conditions import Condition, format_time, parse_time
from modelrollout.core.durations import format_seconds
from modelrollout.core.labels import DEPLOYMENT_LABEL, REVISION_LABEL
from modelrollout.core.observed import Observation, ObservedDeployment, Request
from modelrollout.core.spec import (
    ROUTER_NONE,
    STEP_ANALYSIS,
    STEP_PAUSE,
    STEP_SET_WEIGHT,
    AnalysisRef,
    CanaryStrategy,
)

PHASE_PENDING = "Pending"
PHASE_PROGRESSING = "Progressing"
PHASE_PAUSED = "Paused"
PHASE_HEALTHY = "Healthy"
PHASE_DEGRADED = "Degraded"

PAUSE_STEP = "CanaryPauseStep"
PAUSE_MANUAL = "Manual"
PAUSE_INCONCLUSIVE = "InconclusiveAnalysis"

HISTORY_LIMIT = 30
NO_STEPS = CanaryStrategy(steps=())


@dataclass(frozen=True)
class DesiredDeployment:
    revision: str
    replicas: int


@dataclass(frozen=True)
class Weights:
    stable: int = 100
    canary: int = 0
    mirror: int = 0


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class AnalysisRun:
    """An analysis the core is waiting on; the shell runs it and reports its outcome under `key`."""

    key: str
    revision: str
    analysis: AnalysisRef


@dataclass(frozen=True)
class Decision:
    deployments: tuple[DesiredDeployment, ...]
    delete_revisions: tuple[str, ...]
    stable_revision: str
    canary_revision: str  # empty: no canary; the canary Service then selects the stable pods
    weights: Weights
    status: dict[str, Any]
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None
    analysis_runs: tuple[AnalysisRun, ...] = ()

    def replicas_of(self, revision: str) -> int | None:
        return next((d.replicas for d in self.deployments if d.revision == revision), None)


@dataclass
class _State:
    """The persisted rollout facts, mutable while one decision is computed."""

    stable: str
    canary: str
    step: int
    step_started: datetime | None
    weight: int
    abort: dict[str, Any] | None
    rollback_to: str
    scale_downs: dict[str, datetime]
    pauses: dict[str, dict[str, Any]]
    history: list[dict[str, Any]]
    last_request: dict[str, Any] | None
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    @classmethod
    def load(cls, status: Any) -> _State:
        return cls(
            stable=status.get("stableRevision") or "",
            canary=status.get("canaryRevision") or "",
            step=int(status.get("currentStepIndex") or 0),
            step_started=parse_time(status.get("stepStartedAt")),
            weight=int((status.get("weights") or {}).get("canary") or 0),
            abort=dict(status["abort"]) if status.get("abort") else None,
            rollback_to=status.get("rollbackTo") or "",
            scale_downs={item["revision"]: parse_time(item["after"]) for item in status.get("scaleDowns") or []},
            pauses={p["reason"]: dict(p) for p in status.get("pauseReasons") or []},
            history=list(status.get("history") or []),
            last_request=dict(status["lastRequest"]) if status.get("lastRequest") else None,
            runs={run["key"]: dict(run) for run in status.get("analysisRuns") or [] if run.get("key")},
        )

    def record(self, now: datetime, action: str, revision: str, message: str, actor: str = "") -> None:
        entry = {"time": format_time(now), "action": action, "revision": revision, "message": message}
        if actor:
            entry["actor"] = actor
        self.history = [*self.history, entry][-HISTORY_LIMIT:]

    def emit(self, kind: str, reason: str, message: str) -> None:
        self.events.append(Event(kind, reason, message))

    def pause(self, reason: str, now: datetime, message: str = "") -> None:
        if reason not in self.pauses:
            self.pauses[reason] = {"reason": reason, "startTime": format_time(now), "message": message}

    def unpause(self, *reasons: str) -> None:
        for reason in reasons:
            self.pauses.pop(reason, None)


def canary_replicas_for(weight: int, replicas: int) -> int:
    """Pods the canary needs for `weight` percent: ceil(replicas * weight / 100), at least 1 when weight > 0."""
    if weight <= 0 or replicas <= 0:
        return 0
    return min(replicas, max(1, math.ceil(replicas * weight / 100)))


class _Rollout:
    """One decision. Methods mutate `self.state`; `decide()` wraps construction and rendering."""

    def __init__(self, observation: Observation) -> None:
        self.obs = observation
        self.spec = observation.spec
        self.now = observation.now
        self.current = observation.spec.revision
        self.replicas = observation.spec.replicas
        self.strategy = observation.spec.canary or NO_STEPS
        self.routed = observation.spec.router != ROUTER_NONE
        self.deployments = {d.revision: d for d in observation.deployments}
        self.state = _State.load(observation.status)
        self.requeue: list[float] = []
        self.analysis_runs: list[AnalysisRun] = []
        self.waiting = ""  # what an active rollout waits for, in words
        self.paused_message = ""

    # --- transitions -------------------------------------------------------------------------

    def run(self) -> None:
        state = self.state
        if not state.stable or (state.stable not in self.deployments and state.stable != self.current):
            if state.stable:
                state.emit(
                    "Warning",
                    "StableMissing",
                    f"the Deployment of stable revision {state.stable} is gone; "
                    f"serving revision {self.current} directly",
                )
            state.stable, state.canary, state.weight, state.step = self.current, "", 0, 0
        self._follow_spec()
        if self.obs.request is not None and self.obs.request.id != (state.last_request or {}).get("id"):
            self._handle_request(self.obs.request)
        self._advance_rollback()
        if self._canary_active():
            self._advance_canary()

    def _canary_active(self) -> bool:
        return bool(self.state.canary) and self.state.canary == self.current and not self._held()

    def _held(self) -> bool:
        abort = self.state.abort
        return abort is not None and abort.get("revision") == self.current and self.current != self.state.stable

    def _follow_spec(self) -> None:
        state = self.state
        if self.current == state.stable:
            if state.rollback_to:
                return  # an undo is bringing an older revision back; the spec's revision stays held
            if state.canary:
                self._retire(state.canary)
                state.record(self.now, "Reverted", state.canary, "the spec went back to the stable revision")
                state.emit(
                    "Normal",
                    "Reverted",
                    f"spec is back at stable revision {state.stable}: canary {state.canary} aborted without steps",
                )
                state.canary, state.weight = "", 0
            state.abort = None
            state.unpause(PAUSE_STEP, PAUSE_MANUAL, PAUSE_INCONCLUSIVE)
            return
        if self._held():
            if state.canary:
                self._retire(state.canary)
                state.canary, state.weight = "", 0
            return
        if state.canary != self.current and not state.rollback_to:
            if state.canary:
                self._retire(state.canary)
                state.record(self.now, "Superseded", state.canary, f"superseded by revision {self.current}")
                state.emit("Normal", "Superseded", f"canary {state.canary} superseded by revision {self.current}")
            self._start(self.current)

    def _start(self, revision: str) -> None:
        state = self.state
        state.canary, state.step, state.step_started, state.weight, state.abort = revision, 0, self.now, 0, None
        state.runs = {}
        state.unpause(PAUSE_STEP, PAUSE_INCONCLUSIVE)
        state.scale_downs.pop(revision, None)
        message = (
            f"rolling out revision {revision} (model {self.spec.model.version}) in {len(self.strategy.steps)} steps"
        )
        state.record(self.now, "RolloutStarted", revision, message)
        state.emit("Normal", "RolloutStarted", message)

    def _retire(self, revision: str, delay: float | None = None) -> None:
        """Take traffic off `revision` now and schedule its scale-down (immediate without a router)."""
        if not revision or revision == self.state.stable:
            return
        if delay is None:
            delay = self.strategy.abort_scale_down_delay_seconds
        after = self.now + timedelta(seconds=delay if self.routed else 0)
        self.state.scale_downs[revision] = after

    def _abort(self, reason: str, message: str, actor: str = "") -> None:
        state = self.state
        revision = self.current
        state.abort = {"revision": revision, "reason": reason, "message": message, "time": format_time(self.now)}
        if actor:
            state.abort["actor"] = actor
        self._retire(state.canary)
        state.canary, state.weight = "", 0
        state.unpause(PAUSE_STEP, PAUSE_MANUAL, PAUSE_INCONCLUSIVE)
        state.record(self.now, "Aborted", revision, f"{reason}: {message}", actor)
        state.emit(
            "Warning",
            "RolloutAborted",
            f"revision {revision} aborted ({reason}): {message}; all traffic is on stable revision {state.stable}",
        )

    def _advance_rollback(self) -> None:
        state = self.state
        target = state.rollback_to
        if not target:
            return
        deployment = self.deployments.get(target)
        if target == state.stable or deployment is None:
            state.rollback_to = ""
            return
        if deployment.settled_at(self.replicas):
            previous = state.stable
            state.stable, state.rollback_to = target, ""
            self._retire(previous, self.strategy.scale_down_delay_seconds)
            state.record(self.now, "RolledBack", target, f"revision {target} serves again instead of {previous}")
            state.emit("Normal", "RolledBack", f"rolled back to revision {target}; revision {previous} is scaled down")
        else:
            self.waiting = (
                f"rolling back to revision {target}: {deployment.available_replicas}/{self.replicas} pods available"
            )

    def _advance_canary(self) -> None:
        state = self.state
        steps = self.strategy.steps
        canary = self.deployments.get(state.canary)
        # A deadline condition counts only once the controller has seen our latest scale, so a stale
        # condition from before a retry does not abort the new attempt.
        if (
            canary is not None
            and canary.progress_deadline_exceeded
            and canary.spec_replicas > 0
            and canary.observed_generation >= canary.generation
        ):
            self._abort(
                "ProgressDeadlineExceeded",
                f"canary pods made no progress for "
                f"{self.spec.progress_deadline_seconds}s ({canary.available_replicas} available)",
            )
            return
        if self.obs.firing_alerts:
            self._abort("AlertFiring", f"alert {', '.join(self.obs.firing_alerts)} is firing")
            return
        if self.spec.rollback_alerts:
            self.requeue.append(self.spec.alerts_poll_seconds)  # poll ALERTS while the rollout runs
        if not self._background_analysis():
            return
        while True:
            if PAUSE_MANUAL in state.pauses:
                self.paused_message = f"paused by {state.pauses[PAUSE_MANUAL].get('message') or 'a person'}"
                return
            if state.step >= len(steps):
                self._promote_when_ready(canary)
                return
            step = steps[state.step]
            label = f"step {state.step + 1}/{len(steps)} ({step.describe()})"
            if step.kind == STEP_SET_WEIGHT:
                needed = canary_replicas_for(step.weight, self.replicas)
                if not self._canary_ready(canary, needed):
                    available = canary.available_replicas if canary else 0
                    self.waiting = f"{label}: waiting for {needed} canary pods to be available ({available} now)"
                    return
                state.weight = step.weight
                self._complete_step(f"{label} done: canary weight {step.weight}%")
            elif step.kind == STEP_PAUSE:
                if step.duration is None:
                    state.pause(PAUSE_STEP, self.now)
                    self.paused_message = (
                        f"{label}: waiting for a person (kubectl modelrollout promote {self.obs.meta.name})"
                    )
                    return
                started = state.step_started or self.now
                remaining = (started + timedelta(seconds=step.duration) - self.now).total_seconds()
                if remaining > 0:
                    self.requeue.append(remaining)
                    self.waiting = f"{label}: {format_seconds(remaining)} left at canary weight {state.weight}%"
                    return
                self._complete_step(f"{label} done")
            elif step.kind == STEP_ANALYSIS and not self._analysis_step(step.analysis, label):
                return

    def _run_analysis(self, key: str, ref: AnalysisRef) -> tuple[str, str]:
        """Advance the run `key` with this reconcile's measurements; returns (phase, message)."""
        state = self.state
        self.analysis_runs.append(AnalysisRun(key, state.canary, ref))
        given = self.obs.analysis.get(key)
        if given is None:
            return runs.RUNNING, "waiting for the analysis to start"
        if given.error:
            return runs.ERROR, given.error
        run = runs.advance(state.runs.get(key), key, state.canary, given.metrics, given.measurements, self.now)
        state.runs[key] = run
        wait = runs.seconds_until_due(run, given.metrics, self.now)
        if wait is not None:
            self.requeue.append(max(wait, 0.5))
        return run["phase"], run.get("message", "")

    def _judge_analysis(self, phase: str, message: str, label: str) -> bool:
        """Act on an analysis phase; True when the machine may go on."""
        if phase == runs.SUCCESSFUL:
            return True
        if phase == runs.ERROR:
            self._abort("AnalysisInvalid", f"{label}: {message}")
            return False
        if phase == runs.FAILED:
            self._abort("AnalysisFailed", f"{label}: {message}")
            return False
        if phase == runs.INCONCLUSIVE:
            self.state.pause(PAUSE_INCONCLUSIVE, self.now, message)
            self.paused_message = (
                f"{label} inconclusive: {message}; promote to continue or abort "
                f"(kubectl modelrollout promote|abort {self.obs.meta.name})"
            )
            return False
        self.waiting = f"{label}: {message}"
        return False

    def _background_analysis(self) -> bool:
        """Checks that run for the whole rollout; True while they do not stop it."""
        background = self.spec.background
        if background is None or self.state.step < background.starting_step:
            return True
        phase, message = self._run_analysis(self._background_key(), background.analysis)
        if phase in (runs.RUNNING, runs.SUCCESSFUL):
            return True
        return self._judge_analysis(phase, message, "background analysis")

    def _background_key(self) -> str:
        return f"{self.state.canary}-background"

    def _analysis_step(self, analysis: AnalysisRef | None, label: str) -> bool:
        """True when the step is done and the machine may continue."""
        if analysis is None:
            self._complete_step(f"{label} has no templates")
            return True
        phase, message = self._run_analysis(f"{self.state.canary}-step-{self.state.step}", analysis)
        if self._judge_analysis(phase, message, label):
            self._complete_step(f"{label} succeeded: {message}")
            return True
        return False

    def _complete_step(self, message: str) -> None:
        state = self.state
        state.unpause(PAUSE_STEP, PAUSE_INCONCLUSIVE)
        state.step += 1
        state.step_started = self.now
        state.record(self.now, "StepCompleted", state.canary, message)
        state.emit("Normal", "StepCompleted", message)

    def _canary_ready(self, canary: ObservedDeployment | None, needed: int) -> bool:
        if needed == 0:
            return True
        if canary is None or not canary.settled_at(needed):
            return False
        if self.routed:
            return True
        stable = self.deployments.get(self.state.stable)
        return stable is not None and stable.settled_at(self.replicas - needed)

    def _promote_when_ready(self, canary: ObservedDeployment | None) -> None:
        state = self.state
        if not self._canary_ready(canary, self.replicas) and self.replicas > 0:
            available = canary.available_replicas if canary else 0
            self.waiting = (
                f"all steps done: scaling the canary to {self.replicas} pods before promotion ({available} now)"
            )
            return
        previous, promoted = state.stable, state.canary
        state.stable, state.canary, state.weight, state.step = promoted, "", 0, 0
        self._retire(previous, self.strategy.scale_down_delay_seconds)
        message = f"revision {promoted} (model {self.spec.model.version}) promoted to stable, replacing {previous}"
        state.record(self.now, "Promoted", promoted, message)
        state.emit("Normal", "Promoted", message)

    # --- manual requests ---------------------------------------------------------------------

    def _handle_request(self, request: Request) -> None:
        handler = {
            "promote": self._request_promote,
            "promote-full": self._request_promote,
            "abort": self._request_abort,
            "retry": self._request_retry,
            "pause": self._request_pause,
            "resume": self._request_resume,
            "undo": self._request_undo,
        }.get(request.action)
        accepted, message = handler(request) if handler else (False, f"unknown action {request.action!r}")
        actor = request.actor or "unknown"
        state = self.state
        state.last_request = {
            "id": request.id,
            "action": request.action,
            "actor": actor,
            "accepted": accepted,
            "message": message,
            "time": format_time(self.now),
        }
        if accepted:
            state.record(self.now, request.action, self.current, message, actor)
            state.emit("Normal", f"Manual{request.action.title().replace('-', '')}", f"{message} (by {actor})")
        else:
            state.emit("Warning", "ManualActionRejected", f"{request.action} by {actor} rejected: {message}")

    def _request_promote(self, request: Request) -> tuple[bool, str]:
        state = self.state
        if not self._canary_active():
            return False, "no rollout in progress"
        state.unpause(PAUSE_STEP, PAUSE_MANUAL, PAUSE_INCONCLUSIVE)
        background = state.runs.get(self._background_key())
        if background is not None and background.get("phase") == runs.INCONCLUSIVE:
            # A person judged the inconclusive background checks: they start afresh.
            del state.runs[self._background_key()]
            if not self.strategy.steps or state.step >= len(self.strategy.steps):
                return True, f"revision {state.canary}: background analysis restarted"
            return True, f"revision {state.canary}: inconclusive background analysis accepted, checks restart"
        if request.action == "promote-full":
            state.step, state.step_started = len(self.strategy.steps), self.now
            return True, f"revision {state.canary}: skipping all remaining steps"
        if state.step >= len(self.strategy.steps):
            return True, f"revision {state.canary}: already promoting"
        skipped = self.strategy.steps[state.step].describe()
        if self.strategy.steps[state.step].kind == STEP_SET_WEIGHT:
            state.weight = max(state.weight, self.strategy.steps[state.step].weight)
        state.step += 1
        state.step_started = self.now
        return True, f"revision {state.canary}: step {state.step}/{len(self.strategy.steps)} ({skipped}) promoted"

    def _request_abort(self, request: Request) -> tuple[bool, str]:
        if not self._canary_active():
            return False, "no rollout in progress"
        revision = self.state.canary
        self._abort("Aborted", f"aborted by {request.actor or 'a person'}", request.actor)
        return True, f"revision {revision} aborted; traffic is back on {self.state.stable}"

    def _request_retry(self, request: Request) -> tuple[bool, str]:
        if not self._held():
            return False, "nothing to retry: the spec's revision is not aborted"
        self.state.abort = None
        self._start(self.current)
        return True, f"revision {self.current} restarts from step 1"

    def _request_pause(self, request: Request) -> tuple[bool, str]:
        if not self._canary_active():
            return False, "no rollout in progress"
        self.state.pause(PAUSE_MANUAL, self.now, request.actor or "a person")
        return True, f"revision {self.state.canary} paused at step {self.state.step + 1}"

    def _request_resume(self, request: Request) -> tuple[bool, str]:
        if PAUSE_MANUAL not in self.state.pauses:
            return False, "not paused by a person"
        self.state.unpause(PAUSE_MANUAL)
        return True, f"revision {self.state.canary} resumed"

    def _request_undo(self, request: Request) -> tuple[bool, str]:
        state = self.state
        target = request.revision or (state.stable if self._canary_active() else self._previous_revision())
        if not target:
            return False, "no earlier revision is retained (see revisionHistoryLimit)"
        if target == self.current and target != state.stable:
            return False, f"revision {target} is what the spec asks for: use retry"
        if target != state.stable and target not in self.deployments:
            return False, f"revision {target} is not retained (see revisionHistoryLimit)"
        actor = request.actor or "a person"
        if self._canary_active():
            self._abort("RolledBack", f"undo by {actor}", request.actor)
        if target == state.stable:
            return True, f"revision {self.current} rolled back; {target} serves all traffic"
        state.rollback_to = target
        if self.current != target and not self._held():
            state.abort = {
                "revision": self.current,
                "reason": "RolledBack",
                "message": f"undo by {actor}",
                "time": format_time(self.now),
            }
            if request.actor:
                state.abort["actor"] = request.actor
        return True, f"rolling back to revision {target} without steps"

    def _previous_revision(self) -> str:
        candidates = sorted(
            (d for d in self.deployments.values() if d.revision not in (self.state.stable, self.current)),
            key=lambda d: d.created,
            reverse=True,
        )
        return candidates[0].revision if candidates else ""

    # --- desired objects ---------------------------------------------------------------------

    def desired(self) -> tuple[list[DesiredDeployment], list[str]]:
        state = self.state
        active = self._canary_active()
        replicas: dict[str, int] = {}
        canary_target = 0
        if active:
            steps = self.strategy.steps
            if state.step >= len(steps):
                canary_target = self.replicas
            elif steps[state.step].kind == STEP_SET_WEIGHT:
                canary_target = canary_replicas_for(steps[state.step].weight, self.replicas)
            else:
                canary_target = canary_replicas_for(state.weight, self.replicas)
            replicas[state.canary] = canary_target
        stable_target = self.replicas
        if active and not self.routed:
            canary = self.deployments.get(state.canary)
            ready = min(canary_target, canary.available_replicas if canary else 0)
            stable_target = self.replicas - ready
        replicas[state.stable] = stable_target
        if state.rollback_to:
            replicas[state.rollback_to] = self.replicas
        stable = self.deployments.get(state.stable)
        stable_settled = stable is not None and stable.settled_at(stable_target)
        for revision, after in list(state.scale_downs.items()):
            if revision in replicas:
                state.scale_downs.pop(revision)
                continue
            observed = self.deployments.get(revision)
            if observed is None:
                state.scale_downs.pop(revision)
                continue
            due = self.now >= after and (self.routed or stable_settled)
            if due:
                replicas[revision] = 0
                if observed.spec_replicas == 0:
                    state.scale_downs.pop(revision)
            else:
                replicas[revision] = observed.spec_replicas
                if self.now < after:
                    self.requeue.append((after - self.now).total_seconds())
        keep = {*replicas, self.current}
        history = sorted(
            (d for d in self.deployments.values() if d.revision not in keep), key=lambda d: d.created, reverse=True
        )
        limit = self.spec.revision_history_limit
        for old in history[:limit]:
            replicas[old.revision] = 0
        deleted = [old.revision for old in history[limit:]]
        # The spec's revision always has a Deployment (scaled to zero when held), so its template is retained.
        replicas.setdefault(self.current, 0)
        return [DesiredDeployment(revision, count) for revision, count in replicas.items()], deleted

    def weights(self) -> Weights:
        if self.routed:
            canary = self.state.weight if self._canary_active() else 0
            return Weights(stable=100 - canary, canary=canary)
        canary_dep = self.deployments.get(self.state.canary) if self._canary_active() else None
        stable_dep = self.deployments.get(self.state.stable)
        canary_ready = canary_dep.available_replicas if canary_dep else 0
        stable_ready = stable_dep.available_replicas if stable_dep else 0
        if canary_ready + stable_ready == 0:
            return Weights()
        canary = round(100 * canary_ready / (canary_ready + stable_ready))
        return Weights(stable=100 - canary, canary=canary)

    # --- status ------------------------------------------------------------------------------

    def status(self, weights: Weights) -> dict[str, Any]:
        state, meta, spec = self.state, self.obs.meta, self.spec
        stable = self.deployments.get(state.stable)
        current = self.deployments.get(self.current)
        phase, reason, message = self._phase(stable)
        if state.scale_downs and phase == PHASE_HEALTHY:
            message += f"; scaling down {', '.join(sorted(state.scale_downs))}"
        desired_conditions = conditions_for(phase, reason, message)
        previous = self.obs.status
        if previous.get("phase") != phase and phase in (PHASE_HEALTHY, PHASE_DEGRADED, PHASE_PAUSED):
            state.emit("Warning" if phase == PHASE_DEGRADED else "Normal", phase, message)
        return {
            "observedGeneration": meta.generation,
            "phase": phase,
            "message": message,
            "currentRevision": self.current,
            "stableRevision": state.stable,
            "canaryRevision": state.canary if self._canary_active() else "",
            "currentStepIndex": state.step if self._canary_active() else 0,
            "stepStartedAt": format_time(state.step_started) if state.step_started and self._canary_active() else None,
            "weights": {"stable": weights.stable, "canary": weights.canary, "mirror": weights.mirror},
            "trafficRouter": spec.router,
            "abort": state.abort,
            "rollbackTo": state.rollback_to or None,
            "scaleDowns": [
                {"revision": revision, "after": format_time(after)}
                for revision, after in sorted(state.scale_downs.items())
            ],
            "pauseReasons": list(state.pauses.values()),
            "history": state.history,
            "lastRequest": state.last_request,
            "analysisRuns": list(state.runs.values()),
            "replicas": stable.replicas if stable else 0,
            "readyReplicas": stable.ready_replicas if stable else 0,
            "updatedReplicas": current.updated_replicas if current else 0,
            "selector": f"{DEPLOYMENT_LABEL}={meta.name},{REVISION_LABEL}={state.stable}",
            "conditions": cond.merge_conditions(
                previous.get("conditions") or [], desired_conditions, meta.generation, self.now
            ),
        }

    def _phase(self, stable: ObservedDeployment | None) -> tuple[str, str, str]:
        state, spec = self.state, self.spec
        if self._held():
            abort = state.abort or {}
            return (
                PHASE_DEGRADED,
                abort.get("reason", "Aborted"),
                (
                    f"revision {self.current} is not rolled out ({abort.get('reason')}: {abort.get('message')}); "
                    f"stable revision {state.stable} serves all traffic. Change the spec, or run "
                    f"`kubectl modelrollout retry {self.obs.meta.name}` to roll {self.current} out again"
                ),
            )
        if stable is not None and stable.progress_deadline_exceeded and not self._canary_active():
            return (
                PHASE_DEGRADED,
                "ProgressDeadlineExceeded",
                (
                    f"revision {state.stable} made no progress for {spec.progress_deadline_seconds}s: "
                    f"{stable.ready_replicas}/{self.replicas} pods ready"
                ),
            )
        if self.paused_message:
            reason = next(iter(state.pauses), PAUSE_STEP)
            return PHASE_PAUSED, reason, self.paused_message
        if self.waiting:
            return PHASE_PROGRESSING, "RolloutInProgress", self.waiting
        if stable is None:
            return PHASE_PENDING, "CreatingRevision", f"creating the Deployment of revision {state.stable}"
        if not stable.settled_at(self.replicas):
            return (
                PHASE_PROGRESSING,
                "WaitingForPods",
                (f"waiting for revision {state.stable}: {stable.available_replicas}/{self.replicas} pods available"),
            )
        return (
            PHASE_HEALTHY,
            "Available",
            (
                f"revision {state.stable} (model {spec.model.name} {spec.model.version}) serves with "
                f"{self.replicas} pods ready"
            ),
        )


def conditions_for(phase: str, reason: str, message: str) -> list[Condition]:
    """The kstatus conditions (Ready, Reconciling, Stalled) and ours (Progressing, Paused, Degraded) of a phase."""
    converging = phase in (PHASE_PENDING, PHASE_PROGRESSING, PHASE_PAUSED)
    progressing = phase in (PHASE_PENDING, PHASE_PROGRESSING)

    def flag(kind: str, active: bool, inactive_reason: str) -> Condition:
        return Condition(kind, active, reason if active else inactive_reason, message if active else "")

    return [
        Condition(cond.READY, phase == PHASE_HEALTHY, reason, message),
        flag(cond.RECONCILING, converging, "Reconciled"),
        flag(cond.STALLED, phase == PHASE_DEGRADED, "NotStalled"),
        Condition(cond.PROGRESSING, progressing, reason, message if progressing else ""),
        flag(cond.PAUSED, phase == PHASE_PAUSED, "NotPaused"),
        flag(cond.DEGRADED, phase == PHASE_DEGRADED, "NotDegraded"),
    ]


def invalid_status(
    meta_generation: int, previous: dict[str, Any], reason: str, message: str, now: datetime
) -> tuple[dict[str, Any], tuple[Event, ...]]:
    """Status when the apiserver rejects what the spec asks for: stalled until the spec changes.

    Everything else in the previous status (stable revision, selector, weights) is kept: the stable
    model keeps serving.
    """
    desired = conditions_for(PHASE_DEGRADED, reason, message)
    status = dict(previous)
    status.update(
        {
            "observedGeneration": meta_generation,
            "phase": PHASE_DEGRADED,
            "message": message,
            "conditions": cond.merge_conditions(previous.get("conditions") or [], desired, meta_generation, now),
        }
    )
    changed = previous.get("message") != message or previous.get("phase") != PHASE_DEGRADED
    return status, ((Event("Warning", reason, message),) if changed else ())


def decide(observation: Observation) -> Decision:
    rollout = _Rollout(observation)
    rollout.run()
    deployments, deleted = rollout.desired()
    weights = rollout.weights()
    status = rollout.status(weights)
    requeue = min(rollout.requeue) if rollout.requeue else None
    return Decision(
        deployments=tuple(deployments),
        delete_revisions=tuple(deleted),
        stable_revision=rollout.state.stable,
        canary_revision=rollout.state.canary if rollout._canary_active() else "",
        weights=weights,
        status=status,
        events=tuple(rollout.state.events),
        requeue_after=requeue,
        analysis_runs=tuple(rollout.analysis_runs),
    )
