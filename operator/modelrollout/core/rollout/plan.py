"""The plan: what the cluster should look like after a decision — replicas, Services, routes, tracks.

Rules:
- Computed from intent (the state) and, for safety only, from what is available: traffic never
  goes to a new revision with no available pod. A route or mirror to a canary whose pods are all
  gone falls back to stable, and a blue/green switch falls back to the old revision, until pods
  return; the intent is unchanged and nothing is written back.
- A setCanaryScale step scales the canary apart from its weight (with a router only: without one,
  pods are the traffic), never below what its weight needs; a header route needs one canary pod.
- Header routes are rendered, like weights, only while the canary is in its steps and has an
  available pod; an abort or a promotion clears them from the intent in the same decision.
- The stable revision serves at full size until a new one has taken over all traffic; without a
  router it gives up only the pods the canary serves at the weight reached (never for a step still
  waiting for its pods), and never its last pod before the promotion.
- With `dynamicStableScale` (a router's canary) the stable runs the pods its route share needs, never
  fewer than one: it shrinks only for traffic that left it at least `scaleDownDelaySeconds` ago (the
  data plane applies a route seconds after it is written: Traefik's took 2 s here), and grows at once
  when its share is to grow. Traffic comes back to it only as fast as its pods become available: a
  revision traffic leaves (an abort, a superseded or reverted canary, a lower weight) keeps the share
  the stable cannot carry yet, and its pods, and its scale-down delay counts from when that share
  reached 0% (see `Draft.draining`).
- Without a router, the active Service spans every revision only while a canary takes part in the
  replica split; at any other time it selects one revision, so an abort or a promotion moves all
  traffic in the same decision. A revision leaving the split keeps serving until the stable is back
  at size; once traffic has left it, it keeps its pods for its scale-down delay.
- The spec's revision always has a Deployment (zero replicas when held) so its template is kept;
  older revisions beyond `revisionHistoryLimit` are deleted.
"""

from __future__ import annotations

from datetime import timedelta

from modelrollout.core.cohorts import SessionAffinity
from modelrollout.core.conditions import whole_second_after
from modelrollout.core.enums import GateKind, PauseReason, ServiceRole, Stage, Track
from modelrollout.core.headerroutes import HeaderRoute, SetHeaderRoute
from modelrollout.core.rollout.bluegreen import preview_replicas
from modelrollout.core.rollout.decision import DesiredDeployment, Weights
from modelrollout.core.rollout.draft import Draft, canary_replicas_for
from modelrollout.core.rollout.lifecycle import (
    SHORTEST_INTERVAL_SECONDS,
    abort_scale_down_delay,
    scale_down_at,
    scale_down_delay,
)
from modelrollout.core.rollout.state import CanaryRoute, Gate, ScaleDown
from modelrollout.core.routers import traits_of
from modelrollout.core.spec import step_weight

DRAIN_RECHECK_SECONDS = 2.0  # dynamicStableScale: how often a drain looks at the stable's pods again

_STAGE_TRACKS = {Stage.SHADOW: Track.SHADOW, Stage.PREVIEW: Track.PREVIEW, Stage.PROMOTING: Track.PREVIEW}


def stable_share(replicas: int, canary_pods: int) -> int:
    """Without a router, the stable keeps the pods the canary does not serve, and never fewer than one."""
    return max(1, replicas - canary_pods) if replicas > 0 else 0


def canary_target(d: Draft) -> int:
    """Pods the new revision needs in its stage; never more than a gate let through, never more while paused."""
    target = _stage_target(d)
    if d.state.pause_of(PauseReason.MANUAL) is not None:
        observed = d.deployment(d.state.canary)
        return min(target, observed.spec_replicas if observed else 0)  # a person's pause holds everything
    return target


def _stage_target(d: Draft) -> int:
    state, steps = d.state, d.steps
    match state.stage:
        case Stage.SHADOW:
            return canary_replicas_for(d.shadow.mirror_percent, d.replicas) if d.shadow else 0
        case Stage.PREVIEW:
            return preview_replicas(d)
        case Stage.PROMOTING | Stage.POST_PROMOTION:
            return d.replicas
    serving = d.canary_pods_for(state.canary_weight)
    if state.step >= len(steps):
        return d.replicas if d.gate_open(Gate(GateKind.PROMOTION)) else serving
    step = steps[state.step]
    weight = step_weight(step)
    if weight is not None and d.gate_open(d.step_gate()):
        target = max(serving, d.canary_pods_for(weight))
        if d.paused is not None and not d.splits_by_weight:
            # Without a router pods are traffic: a rollout waiting for a person holds the pods it has for the
            # step (taking them away and bringing them back would oscillate), and prepares no more.
            observed = d.deployment(state.canary)
            return max(serving, min(target, observed.spec_replicas if observed else 0))
        return target
    if isinstance(step, SetHeaderRoute) and step.adds and d.gate_open(d.step_gate()):
        return d.canary_pods_for(state.canary_weight, routed=True)
    return serving


def spans_every_revision(d: Draft) -> bool:
    """Without a router, a canary in its steps shares the active Service with the stable revision."""
    return not d.splits_by_weight and d.blue_green is None and d.canary_active() and d.state.stage is Stage.CANARY


def dynamic_stable_target(d: Draft, route: CanaryRoute | None) -> int:
    """`dynamicStableScale` in the canary's steps: pods for the share of traffic the stable keeps in the route
    written now and in every route of the last scale-down delay, never fewer than one (see `canary_route`)."""
    settled = route.settled if route is not None and route.revision == d.state.canary else 0
    if route is not None and settled < route.weight:
        due = (route.since + timedelta(seconds=scale_down_delay(d)) - d.now).total_seconds()
        d.requeue.append(max(due, SHORTEST_INTERVAL_SECONDS))  # shrink once the route has stood that long
    moved = min(settled, intended_route(d).canary)
    return max(1, canary_replicas_for(100 - moved, d.replicas)) if d.replicas > 0 else 0


def deployments(d: Draft, route: CanaryRoute | None = None) -> tuple[list[DesiredDeployment], list[str]]:
    """The Deployments and their replicas; `route` is what this decision records of the canary side's route."""
    state = d.state
    replicas: dict[str, int] = {}
    drain = d.draining()
    if d.canary_active():
        replicas[state.canary] = canary_target(d)
        if drain is not None and drain.revision == state.canary:  # a lower weight: keep pods for the share left
            replicas[state.canary] = max(replicas[state.canary], canary_replicas_for(drain.weight, d.replicas))
    stable_target = d.replicas
    spans = spans_every_revision(d)
    if spans:
        # Only for the weight reached: a step still waiting for its pods, or a pause, moves nothing.
        reached = canary_replicas_for(state.canary_weight, d.replicas)
        stable_target = stable_share(d.replicas, min(reached, d.available(state.canary)))
    elif d.dynamic_stable and d.canary_active() and state.stage is Stage.CANARY:
        stable_target = dynamic_stable_target(d, route)
    replicas[state.stable] = stable_target
    if state.rollback_to:
        replicas[state.rollback_to] = d.replicas
    stable = d.deployment(state.stable)
    stable_settled = stable is not None and stable.settled_at(stable_target)
    kept = []
    for item in state.scale_downs:
        observed = d.deployment(item.revision)
        if item.revision in replicas or observed is None:
            continue
        if drain is not None and item.revision == drain.revision:  # traffic is still leaving it: it keeps its pods
            replicas[item.revision] = observed.spec_replicas
            kept.append(item)
            d.requeue.append(DRAIN_RECHECK_SECONDS)
            continue
        if drain is None and state.canary_route is not None and state.canary_route.revision == item.revision:
            # Its share reached 0% in this decision: its delay counts from now, as after any move of traffic.
            item = ScaleDown(item.revision, max(item.after, scale_down_at(d, abort_scale_down_delay(d))))
        due = stable_settled if spans else d.now >= item.after
        if due and observed.spec_replicas == 0:
            continue  # done: the revision is history now, kept at zero or deleted by revisionHistoryLimit
        replicas[item.revision] = 0 if due else observed.spec_replicas
        kept.append(item)
        if not due and not spans:
            d.requeue.append((item.after - d.now).total_seconds())
    d.update(scale_downs=tuple(kept))
    if drain is not None and drain.revision not in replicas:  # no scale-down scheduled: keep it serving all the same
        replicas[drain.revision] = d.deployment(drain.revision).spec_replicas
    keep = {*replicas, d.current}
    history = sorted(
        (dep for dep in d.obs.deployments if dep.revision not in keep), key=lambda dep: dep.created, reverse=True
    )
    limit = d.obs.spec.revision_history_limit
    for old in history[:limit]:
        replicas[old.revision] = 0
    deleted = [old.revision for old in history[limit:]]
    replicas.setdefault(d.current, 0)
    return [DesiredDeployment(revision, count) for revision, count in replicas.items()], deleted


def active_revision(d: Draft) -> str:
    """What the active Service selects: the new revision after a blue/green switch while it has pods."""
    if d.canary_active() and d.switched() and d.available(d.state.canary) > 0:
        return d.state.canary
    return d.state.stable


def preview_revision(d: Draft) -> str:
    if d.blue_green is None:
        return ""
    return d.state.canary if d.canary_active() else active_revision(d)


def route_weights(d: Draft) -> Weights:
    """What the routing objects say: the intent, where the new revision has pods to serve it; with
    `dynamicStableScale`, also the share a revision traffic is leaving keeps until the stable can carry it."""
    intended, drain = intended_route(d), d.draining()
    if drain is None or drain.weight <= intended.canary:
        return intended
    mirror = intended.mirror if drain.revision == d.state.canary else 0
    return Weights(stable=100 - drain.weight, canary=drain.weight, mirror=mirror)


def canary_route(d: Draft, route: Weights) -> CanaryRoute | None:
    """What the decision records of the canary side's route (`dynamicStableScale` only): its weight, since when,
    and the weight that has stood for the scale-down delay, so the data plane has applied it before the stable
    gives up the pods it no longer needs. A lower weight is settled at once: the stable grows at once."""
    if not d.dynamic_stable or route.canary == 0:
        return None
    drain = d.draining()
    revision = drain.revision if drain is not None else d.state.canary
    last = d.state.canary_route
    since = whole_second_after(d.now)  # the status keeps whole seconds: the delay is never shorter than set
    if last is None or last.revision != revision:
        return CanaryRoute(revision, route.canary, since, 0)
    if route.canary != last.weight:
        return CanaryRoute(revision, route.canary, since, min(last.settled, route.canary))
    stood = d.now >= last.since + timedelta(seconds=scale_down_delay(d))
    return CanaryRoute(revision, route.canary, last.since, route.canary if stood else last.settled)


def intended_route(d: Draft) -> Weights:
    """The intent, where the new revision has pods to serve it."""
    state = d.state
    if not d.canary_active() or d.available(state.canary) == 0:
        return Weights()
    mirror = state.mirror_percent if state.stage is Stage.SHADOW else 0
    if d.blue_green is not None or not d.splits_by_weight:
        return Weights(mirror=mirror)  # blue/green switches Services; without a router there is no route
    canary = state.canary_weight if state.stage is Stage.CANARY else 0
    return Weights(stable=100 - canary, canary=canary, mirror=mirror)


def header_routes(d: Draft) -> tuple[HeaderRoute, ...]:
    """The header routes the routing objects carry: the intent, while the canary has pods to serve them."""
    state = d.state
    if not d.canary_active() or state.stage is not Stage.CANARY or not d.splits_by_weight or d.blue_green:
        return ()
    return state.header_routes if d.available(state.canary) > 0 else ()


def affinity(d: Draft, route: Weights) -> SessionAffinity | None:
    """Sticky cohorts, only while the canary has a route weight (see `core.cohorts`)."""
    canary = d.obs.spec.canary
    return canary.session_affinity if canary is not None and route.canary > 0 and d.canary_active() else None


def reported_weights(d: Draft, route: Weights) -> Weights:
    """The share of live traffic each revision gets (without a router: the ratio of available pods)."""
    if d.blue_green is not None:
        switched = active_revision(d) != d.state.stable
        return Weights(stable=0, canary=100) if switched else Weights(mirror=route.mirror)
    if d.splits_by_weight:
        return route
    if not spans_every_revision(d):
        return Weights()
    canary, stable = d.available(d.state.canary), d.available(d.state.stable)
    if canary + stable == 0:
        return Weights()
    share = round(100 * canary / (canary + stable))
    return Weights(stable=100 - share, canary=share)


def services(d: Draft) -> dict[ServiceRole, str | None]:
    """Each Service the ModelDeployment should have, and the revision it selects (None: every revision)."""
    active = active_revision(d)
    wanted: dict[ServiceRole, str | None] = {ServiceRole.ACTIVE: None if spans_every_revision(d) else active}
    if d.splits_by_weight:
        wanted[ServiceRole.STABLE] = active
        drain = d.draining()
        canary = d.state.canary if d.canary_active() else active
        wanted[ServiceRole.CANARY] = drain.revision if drain is not None else canary
    preview = preview_revision(d)
    if preview:
        wanted[ServiceRole.PREVIEW] = preview
    return wanted


def stale_services(d: Draft, wanted: dict[ServiceRole, str | None]) -> tuple[ServiceRole, ...]:
    """Services written before (by the router or preview recorded in status) that are no longer wanted."""
    earlier = []
    written = d.state.router_written
    if written is not None and traits_of(written).splits_by_weight:
        earlier += [ServiceRole.STABLE, ServiceRole.CANARY]
    if d.obs.status.get("previewRevision"):
        earlier.append(ServiceRole.PREVIEW)
    return tuple(role for role in earlier if role not in wanted)


def tracks(d: Draft) -> dict[str, Track]:
    state = d.state
    if not d.canary_active():
        return {state.stable: Track.STABLE}
    if d.switched():
        return {state.canary: Track.STABLE, state.stable: Track.OLD}
    return {state.stable: Track.STABLE, state.canary: _STAGE_TRACKS.get(state.stage, Track.CANARY)}
