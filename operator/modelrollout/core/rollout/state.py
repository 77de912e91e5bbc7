"""The persisted rollout state: one frozen `RolloutState`, read from and written to `status` here only.

Rules:
- Intent is never read back from observation. `load_state` reads only the status fields that the
  core's own decisions write (intent and records); what was observed (`weights`, `phase`, replica
  counts, conditions) is written beside them by `core.rollout.status` and never read back here.
- JSON lives only at this edge: `load_state` parses enums and times, `dump_state` writes them.
- A status written by an older operator that lacks `intent` is migrated from the spec's steps and
  the persisted step index, the way Argo Rollouts computes the current set weight.

The fields, and what each one is:

| status field       | RolloutState     | kind        | what it holds                                           |
|--------------------|------------------|-------------|---------------------------------------------------------|
| stableRevision     | stable           | intent      | the revision serving production traffic                 |
| canaryRevision     | canary           | intent      | the revision being rolled out                           |
| stage              | stage            | intent      | the stage of the running rollout                        |
| currentStepIndex   | step             | intent      | the canary step the rollout is at                       |
| stepStartedAt      | step_started     | intent      | when the step (or mirroring, preview, switch) began     |
| intent.canaryWeight| canary_weight    | intent      | the weight the last completed setWeight step asked for  |
| intent.mirrorPercent| mirror_percent  | intent      | the mirrored percent once mirroring began               |
| intent.canaryScale | canary_scale     | intent      | the last completed setCanaryScale (None: follow weight) |
| intent.headerRoutes| header_routes    | intent      | the header routes completed setHeaderRoute steps added  |
| abort              | abort            | intent      | why the spec's revision is held back                    |
| rollbackTo         | rollback_to      | intent      | the revision an undo brings back                        |
| scaleDowns         | scale_downs      | intent      | revisions to scale to zero, and when                    |
| pauseReasons       | pauses           | intent      | why the rollout waits                                   |
| approvals          | approvals        | intent      | gates a person approved                                 |
| analysisRuns       | runs             | intent      | each run's measurements so far (shaped by core.analysis)|
| hooks              | hooks            | intent      | each gating hook call's outcome in the rollout          |
| history            | history          | record      | what was decided, by whom                               |
| lastRequest        | last_request     | record      | the answer to the last manual request                   |
| trafficRouter      | router_written   | record      | the router whose objects were last written              |
| mirrorRefusedAt    | mirror_refused   | record      | since when the data plane's mirroring is refused (once) |
| canaryRoute        | canary_route     | record      | the canary-side route last written: where, since when   |
| previewRevision    | (plan reads it)  | record      | the preview Service written; a stale one is deleted     |
| weights            | (not loaded)     | observation | the share of live traffic each revision gets            |
| phase, message     | (not loaded)     | observation | reported for people and kstatus (with conditions)       |
| replicas, readyReplicas, updatedReplicas, selector | (not loaded) | observation | the scale subresource |
| activeRevision, currentRevision | (not loaded) | observation | reported                                   |
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelrollout.core.conditions import format_time, parse_time
from modelrollout.core.enums import (
    AbortReason,
    GateKind,
    HistoryAction,
    PauseReason,
    RequestAction,
    Router,
    Stage,
)
from modelrollout.core.headerroutes import HeaderRoute, dump_routes, load_routes
from modelrollout.core.hooks import HookPhase, HookPoint
from modelrollout.core.spec import SetCanaryScale, Step, parse_canary_scale, step_weight

HISTORY_LIMIT = 30


@dataclass(frozen=True, order=True)
class Gate:
    """A place where a person may approve: a kind, and for canary steps the step index."""

    kind: GateKind
    step: int | None = None

    def __str__(self) -> str:
        return f"step-{self.step}" if self.kind is GateKind.STEP else self.kind.value

    @classmethod
    def parse(cls, text: str) -> Gate:
        if text.startswith("step-"):
            return cls(GateKind.STEP, int(text.removeprefix("step-")))
        return cls(GateKind(text))


@dataclass(frozen=True)
class Abort:
    revision: str
    reason: AbortReason
    message: str
    time: datetime
    actor: str = ""


@dataclass(frozen=True)
class PauseRecord:
    reason: PauseReason
    since: datetime
    message: str = ""
    gate: Gate | None = None


@dataclass(frozen=True)
class Approval:
    gate: Gate
    actor: str
    time: datetime


@dataclass(frozen=True)
class HistoryEntry:
    time: datetime
    action: HistoryAction | RequestAction
    revision: str
    actor: str
    message: str


@dataclass(frozen=True)
class RequestAnswer:
    id: str
    action: str  # as asked: an unknown action is answered too
    actor: str
    accepted: bool
    message: str
    time: datetime


@dataclass(frozen=True)
class ScaleDown:
    revision: str
    after: datetime


@dataclass(frozen=True)
class CanaryRoute:
    """The route weight a decision wrote to the canary side, the revision it went to, since when, and the
    weight that has stood for the scale-down delay (`settled`: the share the stable may give up pods for).

    Recorded with `dynamicStableScale` only: the stable shrinks only for traffic that left it long enough
    ago for the data plane to have applied the route, and traffic moves back to it only as fast as its
    pods become available.
    """

    revision: str
    weight: int
    since: datetime
    settled: int = 0


@dataclass(frozen=True)
class HookRecord:
    """A gating hook's calls at one point (and step) of a rollout: how many, and the last answer."""

    key: str
    hook: str
    point: HookPoint
    revision: str
    phase: HookPhase
    attempts: int
    time: datetime  # of the last attempt
    step: int | None = None
    code: int | None = None
    latency: float = 0.0  # seconds, of the last attempt
    message: str = ""


@dataclass(frozen=True)
class RolloutState:
    """Everything a decision needs to continue from, and nothing it could observe instead."""

    stable: str = ""
    canary: str = ""
    stage: Stage = Stage.IDLE
    step: int = 0
    step_started: datetime | None = None
    canary_weight: int = 0
    mirror_percent: int = 0
    canary_scale: SetCanaryScale | None = None
    header_routes: tuple[HeaderRoute, ...] = ()
    abort: Abort | None = None
    rollback_to: str = ""
    scale_downs: tuple[ScaleDown, ...] = ()
    pauses: tuple[PauseRecord, ...] = ()
    approvals: tuple[Approval, ...] = ()
    runs: tuple[Mapping[str, Any], ...] = ()
    hooks: tuple[HookRecord, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    last_request: RequestAnswer | None = None
    router_written: Router | None = None
    mirror_refused: datetime | None = None
    canary_route: CanaryRoute | None = None

    def replace(self, **changes: Any) -> RolloutState:
        return dataclasses.replace(self, **changes)

    def pause_of(self, reason: PauseReason) -> PauseRecord | None:
        return next((pause for pause in self.pauses if pause.reason is reason), None)

    def run(self, key: str) -> Mapping[str, Any] | None:
        return next((run for run in self.runs if run.get("key") == key), None)

    def hook(self, key: str) -> HookRecord | None:
        return next((record for record in self.hooks if record.key == key), None)

    def approved(self, gate: Gate) -> bool:
        return any(approval.gate == gate for approval in self.approvals)

    def scale_down_of(self, revision: str) -> ScaleDown | None:
        return next((item for item in self.scale_downs if item.revision == revision), None)


def current_set_weight(steps: tuple[Step, ...], step_index: int) -> int:
    """The weight of the last setWeight step before `step_index` (Argo Rollouts' GetCurrentSetWeight)."""
    weights = [weight for step in steps[:step_index] if (weight := step_weight(step)) is not None]
    return weights[-1] if weights else 0


def load_state(status: Mapping[str, Any], steps: tuple[Step, ...], mirror_percent: int) -> RolloutState:
    """The state in `status`; `steps` and `mirror_percent` migrate a status from before `intent` existed."""
    stage = Stage(status.get("stage") or "")
    if stage is Stage.IDLE and status.get("canaryRevision"):
        stage = Stage.CANARY  # written before stages existed: a canary was always in its steps
    step = int(status.get("currentStepIndex") or 0)
    step_started = parse_time(status.get("stepStartedAt"))
    intent = status.get("intent")
    if intent is None:
        intent = {
            "canaryWeight": current_set_weight(steps, step) if stage is Stage.CANARY else 0,
            "mirrorPercent": mirror_percent if stage is Stage.SHADOW and step_started else 0,
        }
    return RolloutState(
        stable=status.get("stableRevision") or "",
        canary=status.get("canaryRevision") or "",
        stage=stage,
        step=step,
        step_started=step_started,
        canary_weight=int(intent.get("canaryWeight") or 0),
        mirror_percent=int(intent.get("mirrorPercent") or 0),
        canary_scale=_load_scale(intent.get("canaryScale")),
        header_routes=load_routes(intent.get("headerRoutes")),
        abort=_load_abort(status.get("abort")),
        rollback_to=status.get("rollbackTo") or "",
        scale_downs=tuple(ScaleDown(item["revision"], _time(item["after"])) for item in status.get("scaleDowns") or []),
        pauses=tuple(_load_pause(item) for item in status.get("pauseReasons") or []),
        approvals=tuple(
            Approval(Gate.parse(item["gate"]), item.get("actor", ""), _time(item.get("time")))
            for item in status.get("approvals") or []
        ),
        runs=tuple(dict(run) for run in status.get("analysisRuns") or [] if run.get("key")),
        hooks=tuple(_load_hook(item) for item in status.get("hooks") or []),
        history=tuple(_load_history(item) for item in status.get("history") or []),
        last_request=_load_answer(status.get("lastRequest")),
        router_written=Router(status["trafficRouter"]) if status.get("trafficRouter") else None,
        mirror_refused=parse_time(status["mirrorRefusedAt"]) if status.get("mirrorRefusedAt") else None,
        canary_route=_load_route(status.get("canaryRoute")),
    )


def dump_state(state: RolloutState, active: bool) -> dict[str, Any]:
    """The status fields of `state`; rollout fields are empty when no rollout is `active`."""
    return {
        "stableRevision": state.stable,
        "canaryRevision": state.canary if active else "",
        "stage": state.stage.value if active else "",
        "currentStepIndex": state.step if active else 0,
        "stepStartedAt": format_time(state.step_started) if state.step_started and active else None,
        "intent": {
            "canaryWeight": state.canary_weight if active else 0,
            "mirrorPercent": state.mirror_percent if active else 0,
            # Absent, not null, when unset: a merge patch drops nulls, and the next status must compare equal.
            **({"canaryScale": _dump_scale(state.canary_scale)} if active and state.canary_scale else {}),
            **({"headerRoutes": dump_routes(state.header_routes)} if active and state.header_routes else {}),
        },
        "abort": _dump_abort(state.abort),
        "rollbackTo": state.rollback_to or None,
        "scaleDowns": [
            {"revision": item.revision, "after": format_time(item.after)}
            for item in sorted(state.scale_downs, key=lambda item: item.revision)
        ],
        "pauseReasons": [_dump_pause(pause) for pause in state.pauses],
        "approvals": [{"gate": str(a.gate), "actor": a.actor, "time": format_time(a.time)} for a in state.approvals]
        if active
        else [],
        "analysisRuns": [dict(run) for run in state.runs],
        "hooks": [_dump_hook(record) for record in state.hooks],
        "history": [
            {
                "time": format_time(entry.time),
                "action": entry.action.value,
                "revision": entry.revision,
                "actor": entry.actor,
                "message": entry.message,
            }
            for entry in state.history[-HISTORY_LIMIT:]
        ],
        "lastRequest": _dump_answer(state.last_request),
        "trafficRouter": state.router_written.value if state.router_written else None,
        "mirrorRefusedAt": format_time(state.mirror_refused) if state.mirror_refused else None,
        "canaryRoute": _dump_route(state.canary_route),
    }


# --- edges of single fields -------------------------------------------------------------------


def _time(text: str | None) -> datetime:
    parsed = parse_time(text)
    if parsed is None:
        raise ValueError(f"status holds an unreadable time {text!r}")
    return parsed


def _load_route(body: Mapping[str, Any] | None) -> CanaryRoute | None:
    if not body:
        return None
    return CanaryRoute(body["revision"], int(body["weight"]), _time(body["since"]), int(body.get("settled") or 0))


def _dump_route(route: CanaryRoute | None) -> dict[str, Any] | None:
    if route is None:
        return None
    return {
        "revision": route.revision,
        "weight": route.weight,
        "since": format_time(route.since),
        "settled": route.settled,
    }


def _load_scale(body: Mapping[str, Any] | None) -> SetCanaryScale | None:
    return parse_canary_scale(body) if body else None


def _dump_scale(scale: SetCanaryScale | None) -> dict[str, int] | None:
    if scale is None:
        return None
    return {"replicas": scale.replicas} if scale.replicas is not None else {"weight": scale.weight or 0}


def _load_abort(body: Mapping[str, Any] | None) -> Abort | None:
    if not body:
        return None
    return Abort(
        revision=body.get("revision", ""),
        reason=AbortReason(body.get("reason", AbortReason.ABORTED)),
        message=body.get("message", ""),
        time=_time(body.get("time")),
        actor=body.get("actor", ""),
    )


def _dump_abort(abort: Abort | None) -> dict[str, Any] | None:
    if abort is None:
        return None
    body = {
        "revision": abort.revision,
        "reason": abort.reason.value,
        "message": abort.message,
        "time": format_time(abort.time),
    }
    if abort.actor:
        body["actor"] = abort.actor
    return body


def _load_pause(body: Mapping[str, Any]) -> PauseRecord:
    return PauseRecord(
        reason=PauseReason(body["reason"]),
        since=_time(body.get("startTime")),
        message=body.get("message", ""),
        gate=Gate.parse(body["gate"]) if body.get("gate") else None,
    )


def _dump_pause(pause: PauseRecord) -> dict[str, Any]:
    body = {"reason": pause.reason.value, "startTime": format_time(pause.since), "message": pause.message}
    if pause.gate is not None:
        body["gate"] = str(pause.gate)
    return body


def _load_hook(body: Mapping[str, Any]) -> HookRecord:
    return HookRecord(
        key=body["key"],
        hook=body.get("hook", ""),
        point=HookPoint(body["point"]),
        revision=body.get("revision", ""),
        phase=HookPhase(body["phase"]),
        attempts=int(body.get("attempts") or 0),
        time=_time(body.get("time")),
        step=int(body["step"]) if body.get("step") is not None else None,
        code=int(body["code"]) if body.get("code") is not None else None,
        latency=float(body.get("latencySeconds") or 0.0),
        message=body.get("message", ""),
    )


def _dump_hook(record: HookRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": record.key,
        "hook": record.hook,
        "point": record.point.value,
        "revision": record.revision,
        "phase": record.phase.value,
        "attempts": record.attempts,
        "time": format_time(record.time),
        "latencySeconds": round(record.latency, 3),
        "message": record.message,
    }
    if record.step is not None:
        body["step"] = record.step
    if record.code is not None:
        body["code"] = record.code
    return body


def _load_history(body: Mapping[str, Any]) -> HistoryEntry:
    action = body.get("action", "")
    return HistoryEntry(
        time=_time(body.get("time")),
        action=RequestAction.parse(action) or HistoryAction(action),
        revision=body.get("revision", ""),
        actor=body.get("actor", ""),
        message=body.get("message", ""),
    )


def _load_answer(body: Mapping[str, Any] | None) -> RequestAnswer | None:
    if not body:
        return None
    return RequestAnswer(
        id=body.get("id", ""),
        action=body.get("action", ""),
        actor=body.get("actor", ""),
        accepted=bool(body.get("accepted")),
        message=body.get("message", ""),
        time=_time(body.get("time")),
    )


def _dump_answer(answer: RequestAnswer | None) -> dict[str, Any] | None:
    if answer is None:
        return None
    return {
        "id": answer.id,
        "action": answer.action,
        "actor": answer.actor,
        "accepted": answer.accepted,
        "message": answer.message,
        "time": format_time(answer.time),
    }
