"""What a decision changed, one entry per change, for the operator's log at INFO.

Rules:
- Computed from the previous status, the observed Deployments and the decision, never from the
  writes: an entry says what the rollout decided, whether or not the apiserver took it yet.
- A decision that changes nothing yields nothing: a resync or a no-op reconcile is silent.
- Each entry has a one-line message for people and the same facts as fields for log pipelines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelrollout.core import conditions as cond
from modelrollout.core.enums import Change, Phase, Stage
from modelrollout.core.observed import Observation
from modelrollout.core.rollout.decision import Decision

Field = str | int | float | None
PHASE_CONDITIONS = {Phase.PAUSED: cond.PAUSED, Phase.DEGRADED: cond.DEGRADED, Phase.HEALTHY: cond.READY}


@dataclass(frozen=True)
class Entry:
    change: Change
    message: str
    fields: Mapping[str, Field] = field(default_factory=dict)


def journal(obs: Observation, decision: Decision) -> tuple[Entry, ...]:
    """Every change `decision` makes to the rollout `obs` saw, causes first: what was measured, then the
    abort or the steps it led to, the promotion, the traffic, the pods, and the phase that results."""
    before, after = obs.status, decision.status
    entries: list[Entry] = []
    canary = after.get("canaryRevision") or ""
    if canary and canary != (before.get("canaryRevision") or ""):
        stage = after.get("stage") or ""
        entries.append(Entry(Change.STARTED, f"rollout of revision {canary} started ({stage})", {"stage": stage}))
    elif canary and before.get("stage") != after.get("stage"):
        entries.append(_changed(Change.STAGE, "stage", before.get("stage"), after.get("stage")))
    entries += _measured(decision)
    if decision.aborted is not None:
        abort = after.get("abort") or {}
        revision, why = abort.get("revision", ""), abort.get("message", "")
        entries.append(
            Entry(
                Change.ABORTED,
                f"rollout of revision {revision} aborted ({decision.aborted}): {why}",
                {"reason": str(decision.aborted), "aborted_revision": revision},
            )
        )
    entries += _steps(obs, before, after)
    stable = after.get("stableRevision") or ""
    promoted = bool(before.get("stableRevision")) and stable != before.get("stableRevision")
    if promoted:
        entries.append(
            Entry(
                Change.PROMOTED,
                f"revision {stable} promoted: it is stable now (was {before.get('stableRevision')})",
                {"stable": stable, "previous_stable": before.get("stableRevision")},
            )
        )
    entries += _weights(before, after, promoted)
    entries += _scaled(obs, decision)
    reason, previous_reason = _reason(after), _reason(before)
    if (before.get("phase"), previous_reason) != (after.get("phase"), reason):
        entries.append(
            Entry(
                Change.PHASE,
                f"{after.get('phase')} ({reason}): {after.get('message', '')}",
                {"phase": after.get("phase"), "previous_phase": before.get("phase"), "reason": reason},
            )
        )
    return tuple(entries)


def _changed(change: Change, what: str, old: Any, new: Any) -> Entry:
    return Entry(change, f"{what} {old or '-'} → {new or '-'}", {f"previous_{what}": old, what: new})


def _steps(obs: Observation, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Entry]:
    """A step index that moved within one canary: the steps left behind completed, the new one started."""
    steps = obs.spec.canary.steps if obs.spec.canary else ()
    same_rollout = before.get("canaryRevision") == after.get("canaryRevision")
    old, new = int(before.get("currentStepIndex") or 0), int(after.get("currentStepIndex") or 0)
    in_canary = before.get("stage") == Stage.CANARY
    if after.get("stage") != Stage.CANARY or not steps:
        return []
    entries = []
    if same_rollout and in_canary and new > old:
        for index in range(old, min(new, len(steps))):
            shown = f"{index + 1}/{len(steps)}"
            entries.append(
                Entry(Change.STEP_COMPLETED, f"step {shown} completed: {steps[index].describe()}", {"step": shown})
            )
    if new < len(steps) and (not same_rollout or not in_canary or new != old):
        shown = f"{new + 1}/{len(steps)}"
        entries.append(Entry(Change.STEP_STARTED, f"step {shown} started: {steps[new].describe()}", {"step": shown}))
    return entries


def _weights(before: Mapping[str, Any], after: Mapping[str, Any], promoted: bool) -> list[Entry]:
    """The share of live traffic each revision gets, and the mirror, when they moved."""
    old, new = before.get("weights") or {}, after.get("weights") or {}
    entries = []
    for key, label in (("canary", "canary weight"), ("mirror", "mirror percent")):
        was, now = int(old.get(key, 0) or 0), int(new.get(key, 0) or 0)
        if was != now:
            intent = (after.get("intent") or {}).get("canaryWeight" if key == "canary" else "mirrorPercent")
            note = f" (the step asks for {intent})" if intent is not None and intent != now else ""
            if promoted and key == "canary":
                note = " (promoted: the new stable revision serves it all)"
            entries.append(
                Entry(
                    Change.WEIGHT,
                    f"{label} {was}% → {now}%{note}",
                    {"weight": key, "previous_percent": was, "percent": now, "intent_percent": intent},
                )
            )
    return entries


def _measured(decision: Decision) -> list[Entry]:
    entries = []
    for measured in decision.measurements:
        value = "no data" if measured.value is None else f"{measured.value:.6g}"
        judged = f" against {measured.condition}" if measured.condition else ""
        entries.append(
            Entry(
                Change.MEASURED,
                f"analysis metric {measured.metric} measured {value}{judged}: {measured.phase}",
                {
                    "metric": measured.metric,
                    "value": measured.value,
                    "condition": measured.condition,
                    "outcome": str(measured.phase),
                },
            )
        )
    return entries


def _scaled(obs: Observation, decision: Decision) -> list[Entry]:
    """Revisions whose Deployment gets another replica count (a new revision's first pods included)."""
    observed = {deployment.revision: deployment.spec_replicas for deployment in obs.deployments}
    entries = []
    for desired in decision.deployments:
        was = observed.get(desired.revision, 0)
        if desired.replicas != was:
            entries.append(
                Entry(
                    Change.SCALED,
                    f"revision {desired.revision} scaled {was} → {desired.replicas} pods",
                    {"scaled_revision": desired.revision, "previous_replicas": was, "replicas": desired.replicas},
                )
            )
    return entries


def _reason(status: Mapping[str, Any]) -> str:
    """The reason of the condition that carries the phase's why (Paused, Progressing, Degraded or Ready)."""
    wanted = PHASE_CONDITIONS.get(status.get("phase") or "", cond.PROGRESSING)
    for condition in status.get("conditions") or []:
        if condition.get("type") == wanted:
            return str(condition.get("reason") or "")
    return ""
