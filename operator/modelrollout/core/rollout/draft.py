"""One decision in progress: the observation it reads, the state it is making, and what it found.

Rules:
- The draft reads only its `Observation`; time is `obs.now`.
- `state` is a frozen `RolloutState`, replaced (never mutated) as the decision goes; a stage change
  goes through `transition`, which consults the transition table.
- What the rollout waits for is typed (`Wait`: a phase, a reason, words); status derives phase and
  conditions from it, never from message text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from modelrollout.core.conditions import whole_second_after
from modelrollout.core.enums import (
    AbortReason,
    EventReason,
    EventType,
    GateKind,
    HistoryAction,
    PauseReason,
    Phase,
    ProgressReason,
    RequestAction,
    Stage,
)
from modelrollout.core.hooks import HookCall, HookPoint
from modelrollout.core.observed import Observation, ObservedDeployment
from modelrollout.core.rollout import gates
from modelrollout.core.rollout.decision import AnalysisRun, Event, MeasuredMetric
from modelrollout.core.rollout.state import Gate, HistoryEntry, PauseRecord, RolloutState
from modelrollout.core.rollout.transitions import Outcome, next_stage
from modelrollout.core.routers import traits_of
from modelrollout.core.spec import BlueGreenStrategy, ShadowStrategy, Step

AUTOMATIC_ACTOR = "modelrollout"


@dataclass(frozen=True)
class Draining:
    """A revision traffic is leaving, and the share it keeps in this decision (`dynamicStableScale`)."""

    revision: str
    weight: int
    stable: str
    stable_available: int
    replicas: int

    def describe(self) -> str:
        return (
            f"revision {self.revision} keeps {self.weight}% until stable revision {self.stable} has the pods for "
            f"all traffic ({self.stable_available}/{self.replicas} available)"
        )


@dataclass(frozen=True)
class Wait:
    phase: Phase  # PROGRESSING or PAUSED
    reason: PauseReason | ProgressReason
    message: str


@dataclass
class Draft:
    obs: Observation
    state: RolloutState
    events: list[Event] = field(default_factory=list)
    requeue: list[float] = field(default_factory=list)
    analysis_runs: list[AnalysisRun] = field(default_factory=list)
    measured: list[MeasuredMetric] = field(default_factory=list)
    hook_calls: list[HookCall] = field(default_factory=list)  # gating: made now, answered to the next decision
    hook_notices: list[HookCall] = field(default_factory=list)  # not gating: sent once the status is written
    progress: Wait | None = None
    paused: Wait | None = None
    aborted: AbortReason | None = None

    # --- what the spec and the observation say ----------------------------------------------

    @property
    def now(self) -> datetime:
        return self.obs.now

    @property
    def step_start(self) -> datetime:
        """When a step (or mirroring, a preview, a switch) that begins now is recorded as beginning: now rounded up
        to the whole second the status keeps, so a timed pause, shadow or preview counted from it is never cut
        short by the fraction the status drops."""
        return whole_second_after(self.now)

    @property
    def current(self) -> str:
        """The revision the spec asks for."""
        return self.obs.spec.revision

    @property
    def replicas(self) -> int:
        return self.obs.spec.replicas

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.obs.spec.canary.steps if self.obs.spec.canary else ()

    @property
    def blue_green(self) -> BlueGreenStrategy | None:
        return self.obs.spec.blue_green

    @property
    def shadow(self) -> ShadowStrategy | None:
        """The shadow strategy, if the router can mirror; a shadow it cannot honour is skipped."""
        return self.obs.spec.shadow if traits_of(self.obs.spec.router).mirrors else None

    @property
    def splits_by_weight(self) -> bool:
        return traits_of(self.obs.spec.router).splits_by_weight

    @property
    def dynamic_stable(self) -> bool:
        """`dynamicStableScale`: the stable runs only the pods its route share needs (a router's canary only)."""
        canary = self.obs.spec.canary
        return bool(canary and canary.dynamic_stable_scale and self.splits_by_weight and not self.blue_green)

    def deployment(self, revision: str) -> ObservedDeployment | None:
        return next((d for d in self.obs.deployments if d.revision == revision), None)

    def available(self, revision: str) -> int:
        observed = self.deployment(revision)
        return observed.available_replicas if observed else 0

    # --- where the rollout stands ------------------------------------------------------------

    def held(self) -> bool:
        """The spec's revision was aborted and stays held back until the spec changes or a retry."""
        abort = self.state.abort
        return abort is not None and abort.revision == self.current and self.current != self.state.stable

    def canary_active(self) -> bool:
        return bool(self.state.canary) and self.state.canary == self.current and not self.held()

    def draining(self) -> Draining | None:
        """With `dynamicStableScale`, a revision traffic is leaving (aborted, superseded, reverted, or a lower
        weight) keeps the share the stable's available pods cannot carry yet: never more than the last decision
        wrote, 0 once the stable can take it all (or once the leaving revision has no pod to serve it)."""
        last = self.state.canary_route
        if not self.dynamic_stable or last is None or last.revision == self.state.stable or self.replicas <= 0:
            return None
        if self.available(last.revision) == 0:
            return None
        stable = self.available(self.state.stable)
        share = min(last.weight, 100 - 100 * stable // self.replicas)
        return Draining(last.revision, share, self.state.stable, stable, self.replicas) if share > 0 else None

    def switched(self) -> bool:
        """Blue/green after the switch: the new revision is active, the old one kept for a switch back."""
        return self.state.stage is Stage.POST_PROMOTION and bool(self.state.canary)

    def canary_pods_for(self, weight: int, routed: bool | None = None) -> int:
        """Pods the canary runs at `weight`: its share, or more when a setCanaryScale asked, and at least
        one while header routes send it requests (`routed`; None: the routes in the state). Router only."""
        share = canary_replicas_for(weight, self.replicas)
        if not self.splits_by_weight:
            return share
        scale = self.state.canary_scale
        if scale is not None:
            share = max(share, scale.pods(self.replicas))
        routed = bool(self.state.header_routes) if routed is None else routed
        return max(share, min(1, self.replicas)) if routed else share

    def canary_ready(self, needed: int) -> bool:
        """The new revision has exactly `needed` pods, all available.

        Without a router the stable gives up pods only after this, for the weight reached (see `plan`).
        """
        if needed == 0:
            return True
        canary = self.deployment(self.state.canary)
        return canary is not None and canary.settled_at(needed)

    # --- changes -----------------------------------------------------------------------------

    def update(self, **changes: object) -> None:
        self.state = self.state.replace(**changes)

    def transition(self, outcome: Outcome, **changes: object) -> None:
        self.update(stage=next_stage(self.state.stage, outcome), **changes)

    def record(self, action: HistoryAction | RequestAction, revision: str, message: str, actor: str = "") -> None:
        entry = HistoryEntry(self.now, action, revision, actor or AUTOMATIC_ACTOR, message)
        self.update(history=(*self.state.history, entry))

    def emit(self, reason: EventReason, message: str, kind: EventType = EventType.NORMAL) -> None:
        self.events.append(Event(kind, reason, message))
        self.tell(HookPoint.ON_EVENT, {"type": kind.value, "reason": reason.value, "message": message})

    def tell(self, point: HookPoint, event: dict[str, str] | None = None, revision: str = "") -> None:
        """Call the hooks at a point that is not gating; they never hold the rollout up."""
        revision = revision or self.state.canary or self.current
        for hook in self.obs.spec.hooks_at(point):
            key = f"{revision}-{point}-{hook.name}-{len(self.hook_notices)}"
            call = HookCall(key, hook, point, revision, self.state.stable, None, self.state.canary_weight, event or {})
            self.hook_notices.append(call)

    def pause(self, reason: PauseReason, message: str = "", gate: Gate | None = None) -> None:
        existing = self.state.pause_of(reason)
        if existing is not None and (gate is None or existing.gate == gate):
            return
        others = tuple(pause for pause in self.state.pauses if pause.reason is not reason)
        self.update(pauses=(*others, PauseRecord(reason, self.now, message, gate)))

    def unpause(self, *reasons: PauseReason) -> None:
        self.update(pauses=tuple(pause for pause in self.state.pauses if pause.reason not in reasons))

    def wait(self, message: str, reason: ProgressReason = ProgressReason.IN_PROGRESS) -> None:
        """The rollout makes progress by itself; this is what it waits for."""
        self.progress = Wait(Phase.PROGRESSING, reason, message)

    def hold(self, reason: PauseReason, message: str) -> None:
        """The rollout waits for a person."""
        self.paused = Wait(Phase.PAUSED, reason, message)

    # --- gates -------------------------------------------------------------------------------

    def why_a_person(self, gate: Gate) -> str:
        return gates.why_a_person(gate, self.obs.spec, shadow_runs=self.shadow is not None)

    def gate_open(self, gate: Gate) -> bool:
        return self.state.approved(gate) or not self.why_a_person(gate)

    def gate(self, gate: Gate, what: str) -> bool:
        """True when `gate` may be passed; else wait for a person, saying for what and why."""
        if self.gate_open(gate):
            return True
        why = self.why_a_person(gate)
        self.pause(PauseReason.APPROVAL, f"{what} ({why})", gate)
        self.hold(
            PauseReason.APPROVAL,
            f"{what}: waiting for a person to approve ({why}); "
            f"kubectl modelrollout promote {self.obs.meta.name} to go on, abort to stop",
        )
        return False

    def step_gate(self) -> Gate:
        return Gate(GateKind.STEP, self.state.step)


def canary_replicas_for(weight: int, replicas: int) -> int:
    """Pods the canary needs for `weight` percent: ceil(replicas * weight / 100), at least 1 when weight > 0."""
    if weight <= 0 or replicas <= 0:
        return 0
    return min(replicas, max(1, -(-replicas * weight // 100)))
