"""What a decision asks the shell to make true, and what it found out on the way.

Rules:
- A `Decision` is complete: the Deployments with their replica counts, the Services with what each
  selects, the router and its weights, the status, the Events, the analysis runs to measure, and
  the measurements judged, the hook calls to make. The reconciler applies it in a fixed order and decides nothing.
- Weights come in two kinds: `route_weights` are what the routing objects say (written), `weights`
  the share of live traffic each revision gets (reported; without a router, the ratio of ready pods).
  `header_routes` are written beside `route_weights`: requests they match reach the canary whatever its weight.
- `unrouted` says which Services no traffic reaches after the decision: the shell may write those after
  safety work for other ModelDeployments (see `controller.reconciler`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelrollout.core.cohorts import SessionAffinity
from modelrollout.core.enums import (
    AbortReason,
    AnalysisPhase,
    EventReason,
    EventType,
    Router,
    RunKind,
    ServiceRole,
    Track,
)
from modelrollout.core.headerroutes import HeaderRoute
from modelrollout.core.hooks import HookCall
from modelrollout.core.spec import AnalysisRef


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
    type: EventType
    reason: EventReason
    message: str


@dataclass(frozen=True)
class AnalysisRun:
    """An analysis the core waits on; the shell resolves its templates, measures what is due, and
    reports the outcome under `key` in the next observation."""

    key: str
    revision: str
    analysis: AnalysisRef
    kind: RunKind = RunKind.STEP

    @property
    def default_count(self) -> int:
        return self.kind.default_count


@dataclass(frozen=True)
class MeasuredMetric:
    """One measurement taken in by this decision, judged once, for the operator's own metrics."""

    metric: str
    phase: AnalysisPhase
    value: float | None
    condition: str = ""  # what the value was judged against, e.g. "successCondition result < 0.05"


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
    header_routes: tuple[HeaderRoute, ...] = ()  # routes to the canary the routing objects carry
    affinity: SessionAffinity | None = None  # sticky cohorts, written while the canary has a route weight
    tracks: Mapping[str, Track] = field(default_factory=dict)  # revision -> track label of its pods
    router: Router = Router.NONE
    services: Mapping[ServiceRole, str | None] = field(default_factory=dict)  # None: every revision
    stale_services: tuple[ServiceRole, ...] = ()  # written earlier, no longer wanted
    stale_router: Router | None = None  # a router whose objects were written earlier, to delete
    measurements: tuple[MeasuredMetric, ...] = ()
    aborted: AbortReason | None = None  # set when this decision aborted the rollout
    hook_calls: tuple[HookCall, ...] = ()  # gating calls to make now and answer to the next decision
    hook_notices: tuple[HookCall, ...] = ()  # calls that gate nothing: sent once the status is written

    def replicas_of(self, revision: str) -> int | None:
        return next((d.replicas for d in self.deployments if d.revision == revision), None)

    def unrouted(self, role: ServiceRole) -> bool:
        """Whether no traffic reaches the Service for `role` once this decision is written: a router's canary
        Service at 0%, with no mirror and no header route (after an abort, say). Without a router, and for
        every other role, the Service is how traffic arrives."""
        if role is not ServiceRole.CANARY or self.router is Router.NONE:
            return False
        weights = self.route_weights
        return weights.canary == 0 and weights.mirror == 0 and not self.header_routes
