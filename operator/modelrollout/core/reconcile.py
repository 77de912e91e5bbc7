"""The reconcile decision: from what is observed, what should exist and what status to report.

Rules:
- A pure function of (meta, spec, previous status, observed Deployments, now): no I/O, time passed in.
- The stable revision keeps serving, at full size, until the revision replacing it is fully
  available; only then does the Service move and the old revision scale to zero.
- Old revisions are kept at zero replicas up to `revisionHistoryLimit` (newest first) for a fast
  rollback; older ones are deleted. The stable and current revisions are never deleted.
- Events are emitted only on transitions, so a steady object produces none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelrollout.core import conditions as cond
from modelrollout.core.conditions import Condition
from modelrollout.core.labels import DEPLOYMENT_LABEL, REVISION_LABEL
from modelrollout.core.spec import ModelDeploymentSpec, ObjectMeta

PHASE_PENDING = "Pending"
PHASE_PROGRESSING = "Progressing"
PHASE_HEALTHY = "Healthy"
PHASE_DEGRADED = "Degraded"


@dataclass(frozen=True)
class ObservedDeployment:
    """A child Deployment as the apiserver reports it."""

    name: str
    revision: str
    created: str
    spec_replicas: int
    generation: int = 1
    observed_generation: int = 0
    replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    updated_replicas: int = 0
    progress_deadline_exceeded: bool = False

    def settled(self) -> bool:
        """The Deployment controller has seen the latest spec and every pod is updated and available."""
        return (
            self.observed_generation >= self.generation
            and self.updated_replicas == self.spec_replicas
            and self.available_replicas == self.spec_replicas
            and self.replicas == self.spec_replicas
        )


@dataclass(frozen=True)
class DesiredDeployment:
    revision: str
    replicas: int


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    deployments: tuple[DesiredDeployment, ...]
    delete_revisions: tuple[str, ...]
    service_revision: str
    status: dict[str, Any]
    events: tuple[Event, ...] = field(default_factory=tuple)


def reconcile(
    meta: ObjectMeta,
    spec: ModelDeploymentSpec,
    previous: dict[str, Any],
    observed: list[ObservedDeployment],
    now: datetime,
) -> Decision:
    current = spec.revision
    by_revision = {deployment.revision: deployment for deployment in observed}
    stable = previous.get("stableRevision") or ""
    if stable not in by_revision:
        # First deployment, or the stable Deployment vanished (its template is gone with it): serve current.
        stable = current

    candidate = by_revision.get(current)
    promoted = (
        stable != current and candidate is not None and candidate.spec_replicas == spec.replicas and candidate.settled()
    )
    if promoted:
        stable = current

    desired = [DesiredDeployment(current, spec.replicas)]
    if stable != current:
        desired.append(DesiredDeployment(stable, spec.replicas))
    keep = {current, stable}
    history = sorted((d for d in observed if d.revision not in keep), key=lambda d: d.created, reverse=True)
    retained = history[: spec.revision_history_limit]
    desired += [DesiredDeployment(d.revision, 0) for d in retained]
    deleted = tuple(d.revision for d in history[spec.revision_history_limit :])

    status, events = _status(meta, spec, previous, by_revision, stable, current, now)
    if promoted:
        events = (
            Event("Normal", "Promoted", f"revision {current} (model {spec.model.version}) is now stable"),
            *events,
        )
    return Decision(tuple(desired), deleted, stable, status, events)


def _status(
    meta: ObjectMeta,
    spec: ModelDeploymentSpec,
    previous: dict[str, Any],
    by_revision: dict[str, ObservedDeployment],
    stable: str,
    current: str,
    now: datetime,
) -> tuple[dict[str, Any], tuple[Event, ...]]:
    stable_deployment = by_revision.get(stable)
    current_deployment = by_revision.get(current)
    others_running = any(d.replicas > 0 for r, d in by_revision.items() if r not in (stable, current))

    if current_deployment is not None and current_deployment.progress_deadline_exceeded:
        phase = PHASE_DEGRADED
        reason = "ProgressDeadlineExceeded"
        message = (
            f"revision {current} made no progress for {spec.progress_deadline_seconds}s: "
            f"{current_deployment.ready_replicas}/{spec.replicas} pods ready"
        )
    elif current_deployment is None:
        phase = PHASE_PENDING
        reason = "CreatingRevision"
        message = f"creating the Deployment of revision {current}"
    elif (
        stable == current
        and current_deployment.settled()
        and current_deployment.spec_replicas == spec.replicas
        and not others_running
    ):
        phase = PHASE_HEALTHY
        reason = "Available"
        message = (
            f"revision {current} (model {spec.model.name} {spec.model.version}) serves with {spec.replicas} pods ready"
        )
    elif stable == current and current_deployment.settled() and others_running:
        phase = PHASE_PROGRESSING
        reason = "ScalingDownOldRevisions"
        message = "waiting for old revisions to scale down"
    else:
        phase = PHASE_PROGRESSING
        reason = "WaitingForPods"
        message = (
            f"waiting for revision {current}: {current_deployment.available_replicas}/{spec.replicas} pods available"
        )

    ready = phase == PHASE_HEALTHY
    stalled = phase == PHASE_DEGRADED
    reconciling = not ready and not stalled
    desired_conditions = [
        Condition(cond.READY, ready, reason, message),
        Condition(
            cond.RECONCILING, reconciling, reason if reconciling else "Reconciled", message if reconciling else ""
        ),
        Condition(cond.STALLED, stalled, reason if stalled else "NotStalled", message if stalled else ""),
        Condition(cond.PROGRESSING, reconciling, reason, message),
        Condition(cond.DEGRADED, stalled, reason if stalled else "NotDegraded", message if stalled else ""),
    ]
    status: dict[str, Any] = {
        "observedGeneration": meta.generation,
        "phase": phase,
        "message": message,
        "currentRevision": current,
        "stableRevision": stable,
        "canaryRevision": current if current != stable else "",
        "weights": {"stable": 100, "canary": 0, "mirror": 0},
        "replicas": stable_deployment.replicas if stable_deployment else 0,
        "readyReplicas": stable_deployment.ready_replicas if stable_deployment else 0,
        "updatedReplicas": current_deployment.updated_replicas if current_deployment else 0,
        "selector": selector_string(meta.name, stable),
        "conditions": cond.merge_conditions(previous.get("conditions") or [], desired_conditions, meta.generation, now),
    }
    events: tuple[Event, ...] = ()
    if previous.get("phase") != phase:
        event_type = "Warning" if stalled else "Normal"
        events = (Event(event_type, phase, message),)
    return status, events


def invalid(
    meta: ObjectMeta, previous: dict[str, Any], reason: str, message: str, now: datetime
) -> tuple[dict[str, Any], tuple[Event, ...]]:
    """Status when the apiserver rejects what the spec asks for: stalled until the spec changes.

    Everything else in the previous status (stable revision, selector) is kept: the stable model keeps serving.
    """
    desired = [
        Condition(cond.READY, False, reason, message),
        Condition(cond.RECONCILING, False, reason, ""),
        Condition(cond.STALLED, True, reason, message),
        Condition(cond.PROGRESSING, False, reason, message),
        Condition(cond.DEGRADED, True, reason, message),
    ]
    status = dict(previous)
    status.update(
        {
            "observedGeneration": meta.generation,
            "phase": PHASE_DEGRADED,
            "message": message,
            "conditions": cond.merge_conditions(previous.get("conditions") or [], desired, meta.generation, now),
        }
    )
    changed = previous.get("message") != message or previous.get("phase") != PHASE_DEGRADED
    return status, ((Event("Warning", reason, message),) if changed else ())


def selector_string(name: str, revision: str) -> str:
    return f"{DEPLOYMENT_LABEL}={name},{REVISION_LABEL}={revision}"
