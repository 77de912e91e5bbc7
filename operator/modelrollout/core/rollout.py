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
- A rollout goes through stages: an optional Shadow (mirrored traffic only, its answers unused),
  then Canary (the steps) or blue/green: Preview (beside the active revision, behind the preview
  Service), Promoting (scaled to full size), PostPromotion (the active Service switched; the old
  revision kept at full size so a failure switches back at once). Shadow alone ends in a gate.
- Gates (the end of the shadow, each canary step, the final promotion, the blue/green switch) are
  passed automatically or wait for a person, by `spec.automation`: manual waits at every gate;
  supervised waits before live traffic first reaches the new model and before the final promotion;
  full never waits (inconclusive checks still wait: missing data is never a pass). Failing checks
  and firing alarms roll back at every level. Who decided is recorded in each history entry.
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
    AUTOMATION_FULL,
    AUTOMATION_MANUAL,
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
PAUSE_APPROVAL = "AwaitingApproval"

STAGE_SHADOW = "Shadow"
STAGE_CANARY = "Canary"
STAGE_PREVIEW = "Preview"
STAGE_PROMOTING = "Promoting"
STAGE_POST_PROMOTION = "PostPromotion"

GATE_SHADOW = "shadow"  # the end of the shadow stage: live traffic reaches the new model next
GATE_PROMOTION = "promotion"  # the final promotion, or the blue/green switch
GATE_POST_PROMOTION = "post-promotion"  # skipping post-promotion checks
GATE_FULL = "full"  # promote-full: every remaining step skipped
ROUTERS_THAT_MIRROR = ("gatewayAPI", "istio")

TRACK_STABLE = "stable"
TRACK_CANARY = "canary"
TRACK_SHADOW = "shadow"
TRACK_PREVIEW = "preview"
TRACK_OLD = "old"
AUTOMATIC_ACTOR = "modelrollout"

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
    weights: Weights  # reported: the share of live traffic each revision gets
    status: dict[str, Any]
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None
    analysis_runs: tuple[AnalysisRun, ...] = ()
    active_revision: str = ""  # what the active (and, with a router, the stable) Service selects
    preview_revision: str = ""  # blue/green: what the preview Service selects
    route_weights: Weights = field(default_factory=Weights)  # what the routing objects say
    tracks: dict[str, str] = field(default_factory=dict)  # revision -> track label of its pods

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
    stage: str = ""
    mirror: int = 0
    approvals: list[dict[str, Any]] = field(default_factory=list)
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
            stage=status.get("stage") or "",
            mirror=int((status.get("weights") or {}).get("mirror") or 0),
            approvals=[dict(a) for a in status.get("approvals") or []],
            runs={run["key"]: dict(run) for run in status.get("analysisRuns") or [] if run.get("key")},
        )

    def record(self, now: datetime, action: str, revision: str, message: str, actor: str = "") -> None:
        entry = {
            "time": format_time(now),
            "action": action,
            "revision": revision,
            "actor": actor or AUTOMATIC_ACTOR,
            "message": message,
        }
        self.history = [*self.history, entry][-HISTORY_LIMIT:]

    def emit(self, kind: str, reason: str, message: str) -> None:
        self.events.append(Event(kind, reason, message))

    def pause(self, reason: str, now: datetime, message: str = "", gate: str = "") -> None:
        if reason not in self.pauses or (gate and self.pauses[reason].get("gate") != gate):
            self.pauses[reason] = {"reason": reason, "startTime": format_time(now), "message": message}
            if gate:
                self.pauses[reason]["gate"] = gate

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
        self.blue_green = observation.spec.blue_green
        self.routed = observation.spec.router != ROUTER_NONE
        mirrors = observation.spec.router in ROUTERS_THAT_MIRROR
        self.shadow = observation.spec.shadow if mirrors else None
        self.deployments = {d.revision: d for d in observation.deployments}
        self.state = _State.load(observation.status)
        self.requeue: list[float] = []
        self.analysis_runs: list[AnalysisRun] = []
        self.waiting = ""  # what an active rollout waits for, in words
        self.paused_message = ""

    @property
    def scale_down_delay(self) -> int:
        if self.blue_green is not None:
            return self.blue_green.scale_down_delay_seconds
        return self.strategy.scale_down_delay_seconds

    @property
    def abort_scale_down_delay(self) -> int:
        if self.blue_green is not None:
            return self.blue_green.abort_scale_down_delay_seconds
        return self.strategy.abort_scale_down_delay_seconds

    @property
    def switched_by_service(self) -> bool:
        """Traffic leaves a revision when a Service or route stops selecting it, not when it scales down."""
        return self.routed or self.blue_green is not None

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
            self._advance()

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
                self._clear_rollout()
            state.abort = None
            state.unpause(PAUSE_STEP, PAUSE_MANUAL, PAUSE_INCONCLUSIVE, PAUSE_APPROVAL)
            return
        if self._held():
            if state.canary:
                self._retire(state.canary)
                self._clear_rollout()
            return
        if state.canary != self.current and not state.rollback_to:
            if state.canary:
                self._retire(state.canary)
                state.record(self.now, "Superseded", state.canary, f"superseded by revision {self.current}")
                state.emit("Normal", "Superseded", f"canary {state.canary} superseded by revision {self.current}")
            self._start(self.current)

    def _first_stage(self) -> str:
        if self.shadow is not None:
            return STAGE_SHADOW
        return STAGE_PREVIEW if self.blue_green is not None else STAGE_CANARY

    def _start(self, revision: str) -> None:
        state = self.state
        state.canary, state.step, state.weight, state.abort = revision, 0, 0, None
        state.stage, state.mirror, state.approvals = self._first_stage(), 0, []
        # Shadow and preview stages count their time from when the new pods are ready.
        state.step_started = self.now if state.stage == STAGE_CANARY else None
        state.runs = {}
        state.unpause(PAUSE_STEP, PAUSE_INCONCLUSIVE, PAUSE_APPROVAL)
        state.scale_downs.pop(revision, None)
        if self.spec.shadow is not None and self.shadow is None:
            state.emit(
                "Warning",
                "ShadowUnsupported",
                f"strategy.shadow needs a router that mirrors ({', '.join(ROUTERS_THAT_MIRROR)}); shadow skipped",
            )
        message = f"rolling out revision {revision} (model {self.spec.model.version}): {self._plan()}"
        state.record(self.now, "RolloutStarted", revision, message)
        state.emit("Normal", "RolloutStarted", message)

    def _plan(self) -> str:
        stages = []
        if self.shadow is not None:
            stages.append(f"shadow at {self.shadow.mirror_percent}% mirrored traffic")
        if self.blue_green is not None:
            stages.append("blue/green preview, then switch")
        elif self.spec.canary is not None:
            stages.append(f"canary in {len(self.strategy.steps)} steps")
        else:
            stages.append("promotion by a person")
        return ", then ".join(stages) + f" (automation {self.spec.automation})"

    def _clear_rollout(self) -> None:
        state = self.state
        state.canary, state.weight, state.mirror, state.stage, state.approvals = "", 0, 0, "", []

    def _retire(self, revision: str, delay: float | None = None) -> None:
        """Take traffic off `revision` now and schedule its scale-down (immediate when only replicas split traffic)."""
        if not revision or revision == self.state.stable:
            return
        if delay is None:
            delay = self.abort_scale_down_delay
        after = self.now + timedelta(seconds=delay if self.switched_by_service else 0)
        self.state.scale_downs[revision] = after

    def _abort(self, reason: str, message: str, actor: str = "") -> None:
        state = self.state
        revision = self.current
        live = state.stage in (STAGE_CANARY, STAGE_POST_PROMOTION) and (state.weight > 0 or self._switched())
        state.abort = {"revision": revision, "reason": reason, "message": message, "time": format_time(self.now)}
        if actor:
            state.abort["actor"] = actor
        stage = state.stage
        self._retire(state.canary)
        self._clear_rollout()
        state.unpause(PAUSE_STEP, PAUSE_MANUAL, PAUSE_INCONCLUSIVE, PAUSE_APPROVAL)
        state.record(self.now, "Aborted", revision, f"{reason} in stage {stage}: {message}", actor)
        where = "all traffic is back on" if live else "it never served live traffic; all traffic stays on"
        state.emit(
            "Warning",
            "RolloutAborted",
            f"revision {revision} aborted in stage {stage} ({reason}): {message}; "
            f"{where} stable revision {state.stable}",
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
            self._retire(previous, self.scale_down_delay)
            state.record(self.now, "RolledBack", target, f"revision {target} serves again instead of {previous}")
            state.emit("Normal", "RolledBack", f"rolled back to revision {target}; revision {previous} is scaled down")
        else:
            self.waiting = (
                f"rolling back to revision {target}: {deployment.available_replicas}/{self.replicas} pods available"
            )

    def _advance(self) -> None:
        """Safety checks that hold in every stage, then the stage's own progress."""
        state = self.state
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
                f"new pods made no progress for "
                f"{self.spec.progress_deadline_seconds}s ({canary.available_replicas} available)",
            )
            return
        if self.obs.firing_alerts:
            self._abort("AlertFiring", f"alert {', '.join(self.obs.firing_alerts)} is firing")
            return
        if self.spec.rollback_alerts:
            self.requeue.append(self.spec.alerts_poll_seconds)  # poll ALERTS while the rollout runs
        if PAUSE_MANUAL in state.pauses:
            self.paused_message = f"paused by {state.pauses[PAUSE_MANUAL].get('message') or 'a person'}"
            return
        stages = {
            STAGE_SHADOW: self._advance_shadow,
            STAGE_PREVIEW: self._advance_preview,
            STAGE_PROMOTING: self._advance_promoting,
            STAGE_POST_PROMOTION: self._advance_post_promotion,
        }
        # Stages can follow one another within one decision (e.g. a promoted shadow starts the canary).
        for _ in range(len(stages) + 1):
            stage = state.stage
            stages.get(stage, self._advance_canary)(canary)
            if state.stage == stage or not self._canary_active():
                return

    # --- gates -------------------------------------------------------------------------------

    def _why_a_person(self, gate: str) -> str:
        """Why `gate` waits for a person (the spec leaves it to one, or the automation level); empty: it need not."""
        if gate == GATE_SHADOW and self.shadow is not None and self.shadow.duration is None:
            return "the shadow has no duration"
        if gate == GATE_PROMOTION and self.blue_green is None and self.spec.canary is None:
            return "shadow alone"  # a person decides whether the model ever serves
        if gate == GATE_PROMOTION and self.blue_green is not None and self.blue_green.auto_promotion_seconds is None:
            return "no autoPromotionSeconds"
        level = self.spec.automation
        if gate == GATE_POST_PROMOTION or level == AUTOMATION_FULL:
            return ""
        if level == AUTOMATION_MANUAL or gate in (GATE_SHADOW, GATE_PROMOTION):  # supervised: these two only
            return f"automation {level}"
        return ""

    def _approved(self, gate: str) -> bool:
        return any(approval.get("gate") == gate for approval in self.state.approvals)

    def _gate_open(self, gate: str) -> bool:
        return self._approved(gate) or not self._why_a_person(gate)

    def _gate(self, gate: str, what: str) -> bool:
        """True when `gate` may be passed; else wait for a person, saying for what and why."""
        if self._gate_open(gate):
            return True
        why = self._why_a_person(gate)
        self.state.pause(PAUSE_APPROVAL, self.now, f"{what} ({why})", gate)
        self.paused_message = (
            f"{what}: waiting for a person to approve ({why}); "
            f"kubectl modelrollout promote {self.obs.meta.name} to go on, abort to stop"
        )
        return False

    # --- shadow ------------------------------------------------------------------------------

    def _shadow_key(self) -> str:
        return f"{self.state.canary}-shadow"

    def _advance_shadow(self, canary: ObservedDeployment | None) -> None:
        state, shadow = self.state, self.shadow
        if shadow is None:  # shadow removed from the spec, or a router that cannot mirror, mid-shadow
            self._finish_shadow("shadow ended: the spec no longer asks for it, or its router cannot mirror")
            return
        label = f"shadow ({shadow.mirror_percent}% mirrored)"
        needed = canary_replicas_for(shadow.mirror_percent, self.replicas)
        if not self._canary_ready(canary, needed):
            available = canary.available_replicas if canary else 0
            self.waiting = f"{label}: waiting for {needed} shadow pods to be available ({available} now)"
            return
        if state.mirror == 0 or state.step_started is None:
            state.mirror, state.step_started = shadow.mirror_percent, self.now
            message = (
                f"mirroring {shadow.mirror_percent}% of live traffic to revision {state.canary}; answers discarded"
            )
            state.record(self.now, "ShadowStarted", state.canary, message)
            state.emit("Normal", "ShadowStarted", message)
        if self._approved(GATE_SHADOW):
            self._finish_shadow("shadow ended by a person")
            return
        outcome, analysed = "", True
        if shadow.analysis is not None:
            phase, outcome = self._run_analysis(self._shadow_key(), shadow.analysis)
            if phase not in (runs.RUNNING, runs.SUCCESSFUL):
                self._judge_analysis(phase, outcome, f"{label} analysis")
                return
            analysed = phase == runs.SUCCESSFUL or self._open_ended(self._shadow_key())
        if shadow.duration is not None:
            remaining = (state.step_started + timedelta(seconds=shadow.duration) - self.now).total_seconds()
            if remaining > 0:
                self.requeue.append(remaining)
                self.waiting = f"{label}: {format_seconds(remaining)} left" + (f"; {outcome}" if outcome else "")
                return
        if not analysed:
            self.waiting = f"{label}: waiting for the analysis to finish: {outcome}"
            return
        if not self._gate(GATE_SHADOW, f"{label} done" + (f" ({outcome})" if outcome else "")):
            return
        self._finish_shadow(f"shadow done{': ' + outcome if outcome else ''}")

    def _open_ended(self, key: str) -> bool:
        """An analysis whose metrics have no count runs for as long as its stage; it never finishes by itself."""
        given = self.obs.analysis.get(key)
        return given is not None and bool(given.metrics) and all(metric.count == 0 for metric in given.metrics)

    def _finish_shadow(self, message: str) -> None:
        state = self.state
        state.mirror = 0
        if self.blue_green is not None:
            state.stage, state.step_started = STAGE_PREVIEW, None
        else:
            state.stage, state.step, state.step_started = STAGE_CANARY, 0, self.now
            if self._approved(GATE_FULL):
                state.step = len(self.strategy.steps)
        state.unpause(PAUSE_APPROVAL, PAUSE_INCONCLUSIVE)
        text = f"revision {state.canary}: {message}; mirror removed, next stage {state.stage}"
        state.record(self.now, "ShadowCompleted", state.canary, text)
        state.emit("Normal", "ShadowCompleted", text)

    # --- blue/green --------------------------------------------------------------------------

    def preview_replicas(self) -> int:
        bg = self.blue_green
        return self.replicas if bg is None or bg.preview_replicas is None else min(bg.preview_replicas, self.replicas)

    def _advance_preview(self, canary: ObservedDeployment | None) -> None:
        state, bg = self.state, self.blue_green
        if bg is None:  # the strategy changed to canary mid-preview: go on as a canary
            state.stage, state.step, state.step_started = STAGE_CANARY, 0, self.now
            return
        target = self.preview_replicas()
        if not self._canary_ready(canary, target):
            available = canary.available_replicas if canary else 0
            self.waiting = f"preview: waiting for {target} pods of revision {state.canary} ({available} available)"
            return
        if state.step_started is None:
            state.step_started = self.now
            message = f"preview of revision {state.canary} is ready with {target} pods behind the preview Service"
            state.record(self.now, "PreviewReady", state.canary, message)
            state.emit("Normal", "PreviewReady", message)
        if self._approved(GATE_PROMOTION):
            self._start_promoting("promoted by a person")
            return
        outcome = ""
        if bg.pre_promotion is not None:
            phase, message = self._run_analysis(f"{state.canary}-pre-promotion", bg.pre_promotion)
            if not self._judge_analysis(phase, message, "pre-promotion analysis"):
                return
            outcome = f"pre-promotion analysis passed: {message}"
        if bg.auto_promotion_seconds is not None:
            due = state.step_started + timedelta(seconds=bg.auto_promotion_seconds)
            remaining = (due - self.now).total_seconds()
            if remaining > 0:
                self.requeue.append(remaining)
                self.waiting = f"preview ready; switching automatically in {format_seconds(remaining)}"
                return
        if not self._gate(GATE_PROMOTION, "preview ready" + (f", {outcome}" if outcome else "")):
            return
        self._start_promoting(outcome or "preview ready")

    def _start_promoting(self, message: str) -> None:
        state = self.state
        state.stage, state.step_started = STAGE_PROMOTING, self.now
        state.unpause(PAUSE_APPROVAL, PAUSE_INCONCLUSIVE)
        state.record(self.now, "Promoting", state.canary, f"{message}; scaling to {self.replicas} pods for the switch")

    def _advance_promoting(self, canary: ObservedDeployment | None) -> None:
        state = self.state
        if not self._canary_ready(canary, self.replicas):
            available = canary.available_replicas if canary else 0
            self.waiting = f"promoting: scaling revision {state.canary} to {self.replicas} pods ({available} available)"
            return
        state.stage, state.step_started = STAGE_POST_PROMOTION, self.now
        message = (
            f"active Service switched to revision {state.canary}; "
            f"revision {state.stable} kept at {self.replicas} pods for a switch back"
        )
        state.record(self.now, "Switched", state.canary, message)
        state.emit("Normal", "Switched", message)

    def _advance_post_promotion(self, canary: ObservedDeployment | None) -> None:
        state, bg = self.state, self.blue_green
        if bg is not None and bg.post_promotion is not None and not self._approved(GATE_POST_PROMOTION):
            phase, message = self._run_analysis(f"{state.canary}-post-promotion", bg.post_promotion)
            if not self._judge_analysis(phase, message, "post-promotion analysis"):
                return
        self._promote()

    def _switched(self) -> bool:
        return self.state.stage == STAGE_POST_PROMOTION and bool(self.state.canary)

    # --- canary ------------------------------------------------------------------------------

    def _advance_canary(self, canary: ObservedDeployment | None) -> None:
        state = self.state
        steps = self.strategy.steps
        if not self._background_analysis():
            return
        while True:
            if state.step >= len(steps):
                if self._gate(GATE_PROMOTION, "all steps done, promotion to 100%"):
                    self._promote_when_ready(canary)
                return
            step = steps[state.step]
            label = f"step {state.step + 1}/{len(steps)} ({step.describe()})"
            waits_anyway = step.kind == STEP_PAUSE and step.duration is None
            if not waits_anyway and not self._gate(self._step_gate(), label):
                return
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

    def _step_gate(self) -> str:
        return f"step-{self.state.step}"

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
        if self.switched_by_service:
            return True
        stable = self.deployments.get(self.state.stable)
        return stable is not None and stable.settled_at(self.replicas - needed)

    def _promote_when_ready(self, canary: ObservedDeployment | None) -> None:
        if not self._canary_ready(canary, self.replicas) and self.replicas > 0:
            available = canary.available_replicas if canary else 0
            self.waiting = (
                f"all steps done: scaling the canary to {self.replicas} pods before promotion ({available} now)"
            )
            return
        self._promote()

    def _promote(self) -> None:
        state = self.state
        previous, promoted, actor = state.stable, state.canary, self._promotion_actor()
        state.stable, state.step = promoted, 0
        self._clear_rollout()
        state.unpause(PAUSE_STEP, PAUSE_INCONCLUSIVE, PAUSE_APPROVAL)
        self._retire(previous, self.scale_down_delay)
        message = f"revision {promoted} (model {self.spec.model.version}) promoted to stable, replacing {previous}"
        state.record(self.now, "Promoted", promoted, message, actor)
        state.emit("Normal", "Promoted", message)

    def _promotion_actor(self) -> str:
        """A person who approved the promotion decided it; otherwise the automation did."""
        approval = next((a for a in self.state.approvals if a.get("gate") == GATE_PROMOTION), None)
        return str(approval.get("actor", "")) if approval else ""

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
        """Promote passes what the rollout waits at now: a gate, an inconclusive check, a step or a stage."""
        state = self.state
        if not self._canary_active():
            return False, "no rollout in progress"
        waiting_gate = (state.pauses.get(PAUSE_APPROVAL) or {}).get("gate", "")
        pauses_before = dict(state.pauses)
        state.unpause(PAUSE_STEP, PAUSE_MANUAL, PAUSE_INCONCLUSIVE, PAUSE_APPROVAL)
        steps = self.strategy.steps
        if request.action == "promote-full":
            for gate in (GATE_SHADOW, GATE_PROMOTION, GATE_POST_PROMOTION, GATE_FULL):
                self._approve(gate, request)
            if state.stage == STAGE_CANARY:
                state.step, state.step_started = len(steps), self.now
            return True, f"revision {state.canary}: skipping all remaining steps, gates and checks"
        if waiting_gate:
            self._approve(waiting_gate, request)
            return True, f"revision {state.canary}: gate {waiting_gate} approved"
        if state.stage == STAGE_SHADOW:
            self._approve(GATE_SHADOW, request)
            return True, f"revision {state.canary}: shadow stage ended early"
        if state.stage == STAGE_PREVIEW:
            self._approve(GATE_PROMOTION, request)
            return True, f"revision {state.canary}: switching the active Service"
        if state.stage == STAGE_PROMOTING:
            return True, f"revision {state.canary}: already promoting"
        if state.stage == STAGE_POST_PROMOTION:
            self._approve(GATE_POST_PROMOTION, request)
            return True, f"revision {state.canary}: post-promotion checks skipped"
        background = state.runs.get(self._background_key())
        if background is not None and background.get("phase") == runs.INCONCLUSIVE:
            # A person judged the inconclusive background checks: they start afresh.
            del state.runs[self._background_key()]
            if not steps or state.step >= len(steps):
                return True, f"revision {state.canary}: background analysis restarted"
            return True, f"revision {state.canary}: inconclusive background analysis accepted, checks restart"
        if state.step >= len(steps):
            return True, f"revision {state.canary}: already promoting"
        skipped = steps[state.step].describe()
        if steps[state.step].kind == STEP_SET_WEIGHT:
            # Traffic never goes ahead of available pods, not even on a person's word: abort instead.
            state.pauses = pauses_before
            return False, (
                f"revision {state.canary}: step {state.step + 1} ({skipped}) moves traffic as soon as its pods are "
                "available; it cannot be skipped (abort to stop the rollout)"
            )
        state.step += 1
        state.step_started = self.now
        return True, f"revision {state.canary}: step {state.step}/{len(steps)} ({skipped}) promoted"

    def _approve(self, gate: str, request: Request) -> None:
        if not self._approved(gate):
            self.state.approvals.append(
                {"gate": gate, "actor": request.actor or "unknown", "time": format_time(self.now)}
            )

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
            canary_target = self._canary_target()
            replicas[state.canary] = canary_target
        stable_target = self.replicas
        if active and not self.switched_by_service:
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
            due = self.now >= after and (self.switched_by_service or stable_settled)
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

    def _canary_target(self) -> int:
        """Pods the new revision needs in its stage; never more than the traffic a gate has let through."""
        state, steps = self.state, self.strategy.steps
        if state.stage == STAGE_SHADOW:
            return canary_replicas_for(self.shadow.mirror_percent, self.replicas) if self.shadow else 0
        if state.stage == STAGE_PREVIEW:
            return self.preview_replicas()
        if state.stage in (STAGE_PROMOTING, STAGE_POST_PROMOTION):
            return self.replicas
        if state.step >= len(steps):
            if self._gate_open(GATE_PROMOTION):
                return self.replicas
            return canary_replicas_for(state.weight, self.replicas)
        step = steps[state.step]
        if step.kind == STEP_SET_WEIGHT and self._gate_open(self._step_gate()):
            return canary_replicas_for(step.weight, self.replicas)
        return canary_replicas_for(state.weight, self.replicas)

    def active_revision(self) -> str:
        return self.state.canary if self._canary_active() and self._switched() else self.state.stable

    def preview_revision(self) -> str:
        if self.blue_green is None:
            return ""
        return self.state.canary if self._canary_active() else self.active_revision()

    def tracks(self) -> dict[str, str]:
        state = self.state
        if not self._canary_active():
            return {state.stable: TRACK_STABLE}
        if self._switched():
            return {state.canary: TRACK_STABLE, state.stable: TRACK_OLD}
        stage_track = {STAGE_SHADOW: TRACK_SHADOW, STAGE_PREVIEW: TRACK_PREVIEW, STAGE_PROMOTING: TRACK_PREVIEW}
        return {state.stable: TRACK_STABLE, state.canary: stage_track.get(state.stage, TRACK_CANARY)}

    def route_weights(self, reported: Weights) -> Weights:
        """Blue/green switches by Service selectors: its routes keep all traffic on the active Service."""
        if self.blue_green is not None:
            return Weights(stable=100, canary=0, mirror=reported.mirror)
        return reported

    def weights(self) -> Weights:
        active = self._canary_active()
        mirror = self.state.mirror if active and self.state.stage == STAGE_SHADOW else 0
        if self.blue_green is not None:
            if active and self._switched():
                return Weights(stable=0, canary=100)
            return Weights(stable=100, canary=0, mirror=mirror)
        if self.routed:
            canary = self.state.weight if active else 0
            return Weights(stable=100 - canary, canary=canary, mirror=mirror)
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
            "stage": state.stage if self._canary_active() else "",
            "activeRevision": self.active_revision(),
            "previewRevision": self.preview_revision() or None,
            "approvals": state.approvals if self._canary_active() else [],
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
    active = rollout._canary_active()
    requeue = min(rollout.requeue) if rollout.requeue else None
    return Decision(
        deployments=tuple(deployments),
        delete_revisions=tuple(deleted),
        stable_revision=rollout.state.stable,
        canary_revision=rollout.state.canary if active else "",
        weights=weights,
        status=status,
        events=tuple(rollout.state.events),
        requeue_after=requeue,
        analysis_runs=tuple(rollout.analysis_runs),
        active_revision=rollout.active_revision(),
        preview_revision=rollout.preview_revision(),
        route_weights=rollout.route_weights(weights),
        tracks=rollout.tracks(),
    )
