"""The rollout's safety invariants, checked on each decision against the observation it was made from.

Each check raises an AssertionError naming the invariant, the values and the spec. `Checker` runs them
all and remembers the running rollout, for the rule that a paused rollout does not move; the World
calls it after every decision in the property tests.

The checks read only what a decision reports (desired replicas, route and reported weights, the active
revision, status) and the spec, never the core's own bookkeeping (`status.intent`), so a core that
reloads a reported weight as its intent is caught. `Decision.services` is read when the core has it.

The rounding without a router is the documented one: the canary runs ⌈replicas·w/100⌉ pods (at least 1
when w > 0) and the stable keeps the rest, never fewer than one pod, before the promotion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from modelrollout.core.enums import Change, Router, ServiceRole
from modelrollout.core.observed import Observation
from modelrollout.core.rollout import Decision, canary_replicas_for, decide, journal

PAUSED = "Paused"
CANARY = "Canary"
NO_LIVE_TRAFFIC_STAGES = ("Shadow", "Preview", "Promoting")  # the new revision serves no live request yet


# --- what the spec and the decision say, read the same way from every version of the core ----------


def available(observation: Observation, revision: str) -> int:
    return next((d.available_replicas for d in observation.deployments if d.revision == revision), 0)


def splits_by_weight(observation: Observation) -> bool:
    """A router carries the weights; without one (`none`) the ratio of pods splits live traffic."""
    return str(observation.spec.router) != "none"


def set_weight(step) -> int | None:
    """The weight a step sets: a setWeight's, or an experiment's (held for its duration, kept after)."""
    kind = getattr(step, "kind", type(step).__name__)
    return step.weight if kind in ("setWeight", "SetWeight", "Experiment") else None


def experiment_weight(observation: Observation, decision: Decision) -> int:
    """The weight of the experiment the rollout is at (it holds that weight before it completes), else 0."""
    step = int(decision.status.get("currentStepIndex") or 0)
    steps = steps_of(observation)
    current = steps[step] if step < len(steps) else None
    return current.weight if type(current).__name__ == "Experiment" else 0


def dynamic_stable(observation: Observation) -> bool:
    """`dynamicStableScale` in effect: a router's canary (the CRD refuses it without a router)."""
    canary = observation.spec.canary
    return (
        bool(getattr(canary, "dynamic_stable_scale", False))
        and splits_by_weight(observation)
        and observation.spec.blue_green is None
    )


def pods_for(share: int, replicas: int) -> int:
    """The pods a share of traffic needs: ceil(replicas * share / 100), at least 1 when share > 0."""
    return canary_replicas_for(share, replicas)


def carried(observation: Observation, revision: str) -> int:
    """The share of traffic `revision`'s available pods carry, rounded down."""
    replicas = observation.spec.replicas
    return 100 * available(observation, revision) // replicas if replicas > 0 else 100


def draining(observation: Observation, decision: Decision) -> str:
    """With dynamicStableScale, a revision outside the rollout that the canary Service still selects (it keeps
    a share while the stable's pods come up); empty when there is none."""
    selected = services(decision).get("canary")
    if not dynamic_stable(observation) or selected in (None, "", decision.stable_revision, decision.canary_revision):
        return ""
    return selected


def drain_allowance(observation: Observation, decision: Decision) -> int:
    """The route share a draining revision may keep: what the stable's available pods cannot carry yet, and
    nothing once it has no available pod itself."""
    revision = draining(observation, decision)
    if not revision or available(observation, revision) == 0:
        return 0
    return 100 - carried(observation, decision.stable_revision)


def steps_of(observation: Observation) -> tuple:
    return observation.spec.canary.steps if observation.spec.canary else ()


def services(decision: Decision) -> dict:
    """Role -> revision selected (None: every revision); empty for a core that does not report them."""
    return dict(getattr(decision, "services", None) or {})


def awaiting_promotion(decision: Decision) -> bool:
    return any(
        pause.get("reason") == "AwaitingApproval" and pause.get("gate") == "promotion"
        for pause in decision.status.get("pauseReasons") or []
    )


def reached_weight(observation: Observation, decision: Decision) -> int:
    """The largest setWeight among the steps completed so far (those before currentStepIndex)."""
    step = int(decision.status.get("currentStepIndex") or 0)
    weights = [set_weight(s) for s in steps_of(observation)[:step]]
    return max((w for w in weights if w is not None), default=0)


def scaled_pods(observation: Observation, decision: Decision) -> int:
    """The pods the last setCanaryScale among the completed steps asks for (0: none, or matchTrafficWeight)."""
    step = int(decision.status.get("currentStepIndex") or 0)
    scales = [s for s in steps_of(observation)[:step] if type(s).__name__ == "SetCanaryScale"]
    return scales[-1].pods(observation.spec.replicas) if scales else 0


def routes_reached(observation: Observation, decision: Decision) -> set[str]:
    """Names of the header routes the completed setHeaderRoute steps leave in place (added, not removed since)."""
    step = int(decision.status.get("currentStepIndex") or 0)
    names: set[str] = set()
    for each in steps_of(observation)[:step]:
        if type(each).__name__ == "SetHeaderRoute":
            (names.add if each.matches else names.discard)(each.name)
    return names


def route_pod(observation: Observation, decision: Decision) -> int:
    """One canary pod while a header route is in place or the next step adds one (0 without a router)."""
    step = int(decision.status.get("currentStepIndex") or 0)
    steps = steps_of(observation)
    preparing = step < len(steps) and type(steps[step]).__name__ == "SetHeaderRoute" and bool(steps[step].matches)
    routed = bool(routes_reached(observation, decision)) or preparing
    return min(1, observation.spec.replicas) if routed and splits_by_weight(observation) else 0


def allowed_weight(observation: Observation, decision: Decision) -> int:
    """The share the canary's pods may be scaled for: the weight reached, or the setWeight step being
    prepared (its pods may come up before it completes), or 100 once every step is done and the
    promotion is not waiting for a person (the canary scales to full size before the promotion)."""
    steps, reached = steps_of(observation), reached_weight(observation, decision)
    step = int(decision.status.get("currentStepIndex") or 0)
    if step >= len(steps):
        return reached if awaiting_promotion(decision) else 100
    preparing = set_weight(steps[step]) or 0
    return max(reached, preparing)


def _fail(invariant: str, observation: Observation, decision: Decision, **values) -> None:
    shown = ", ".join(f"{key}={value!r}" for key, value in values.items())
    spec, status = observation.spec, decision.status
    steps = [s.describe() if hasattr(s, "describe") else str(s) for s in steps_of(observation)]
    raise AssertionError(
        f"{invariant}: {shown}; spec: router {spec.router}, replicas {spec.replicas}, steps {steps}, "
        f"shadow {spec.shadow is not None}, blueGreen {spec.blue_green is not None}, automation {spec.automation}; "
        f"decision: stage {status.get('stage')!r} step {status.get('currentStepIndex')} "
        f"phase {status.get('phase')}: {status.get('message')}"
    )


# --- the invariants ----------------------------------------------------------------------------------


def reached_services(decision: Decision) -> set[ServiceRole]:
    """The Services requests reach, seen from the data plane: clients call the active Service; a router sends
    its stable weight to the stable Service, and its canary weight, its mirror and its header routes to the
    canary Service. (Computed here from the route, apart from `Decision.unrouted`.)"""
    reached = {ServiceRole.ACTIVE}
    if decision.router is not Router.NONE:
        route = decision.route_weights
        if route.stable > 0:
            reached.add(ServiceRole.STABLE)
        if route.canary > 0 or route.mirror > 0 or decision.header_routes:
            reached.add(ServiceRole.CANARY)
    return reached


def reached_services_select_the_decision(observation: Observation, decision: Decision, written: dict) -> None:
    """After the writes of a decision, some of them left for later in a hurry: every Service requests reach
    selects what the decision says, so a write left behind never carries traffic to another revision."""
    for role in reached_services(decision) & set(decision.services):
        if written.get(role, "<not written>") != decision.services[role]:
            _fail(
                "reached_services_select_the_decision",
                observation,
                decision,
                service=role.value,
                selects=written.get(role, "<not written>"),
                decided=decision.services[role],
                route=decision.route_weights,
            )


def no_traffic_without_pods(observation: Observation, decision: Decision) -> None:
    """No route weight, mirror, active Service or reported share goes to a new revision with no available pod
    (and none goes anywhere but the stable revision while no rollout runs)."""
    new, stable, wanted = decision.canary_revision, decision.stable_revision, services(decision)
    route, weights = decision.route_weights, decision.weights
    if not new:
        drain = drain_allowance(observation, decision)  # dynamicStableScale: what the stable cannot carry yet
        stray = {
            "header routes": [r.name for r in decision.header_routes],
            "route canary": route.canary if route.canary > drain else 0,
            "mirror": route.mirror,
            "reported canary share": weights.canary if weights.canary > drain else 0,
            "active revision": decision.active_revision if decision.active_revision not in ("", stable) else "",
            "active Service": wanted.get("active", stable) if wanted.get("active", stable) != stable else "",
        }
        if any(stray.values()):
            _fail("traffic beside the stable revision while no rollout runs", observation, decision, **stray)
        return
    if available(observation, new) > 0:
        return
    takers = {
        "header routes": [r.name for r in decision.header_routes],
        "route canary": route.canary if splits_by_weight(observation) else 0,
        "mirror": route.mirror if splits_by_weight(observation) else 0,
        "reported canary share": weights.canary,
        "active revision": decision.active_revision == new,
        "stable Service": wanted.get("stable") == new,
        "active Service": wanted.get("active") == new,
    }
    if any(takers.values()):
        _fail("traffic to a new revision with no available pod", observation, decision, new=new, **takers)


def sticky_only_with_a_weight(observation: Observation, decision: Decision) -> None:
    """Sticky cohorts are written only while the canary has a route weight: nobody is sorted into a cohort at
    0%, and an abort or a canary without pods leaves no stickiness behind."""
    affinity = getattr(decision, "affinity", None)
    if affinity is not None and (not decision.canary_revision or decision.route_weights.canary <= 0):
        _fail("stickiness written without a canary route weight", observation, decision, affinity=affinity)


def mirror_only_where_declared(observation: Observation, decision: Decision) -> None:
    """No mirror is written to a data plane that does not declare it can mirror, unless the spec assumes it."""
    if observation.mirroring_undeclared and not observation.spec.assumes_mirroring and decision.route_weights.mirror:
        _fail("a mirror on a data plane that does not declare mirroring", observation, decision)


def share_within_the_step(observation: Observation, decision: Decision) -> None:
    """Before promotion the new revision never gets more than the setWeight the rollout has reached; a
    shadow, a preview or a blue/green revision being scaled up gets no live traffic at all."""
    new, stage = decision.canary_revision, decision.status.get("stage")
    if not new:
        return
    route, weights = decision.route_weights, decision.weights
    routes = {route.name for route in decision.header_routes}
    if stage in NO_LIVE_TRAFFIC_STAGES and (
        route.canary or weights.canary or routes or decision.active_revision == new
    ):
        _fail(
            "live traffic to a revision in a stage that serves none",
            observation,
            decision,
            route_canary=route.canary,
            reported_canary=weights.canary,
            header_routes=sorted(routes),
            active=decision.active_revision,
        )
    if stage != CANARY:
        return
    reached = reached_weight(observation, decision)
    beyond = routes - routes_reached(observation, decision)
    if beyond:
        _fail("a header route no completed step added", observation, decision, routes=sorted(beyond))
    if splits_by_weight(observation):
        if route.canary > max(reached, experiment_weight(observation, decision)):
            _fail("route weight beyond the setWeight reached", observation, decision, route=route, reached=reached)
        allowed = max(
            canary_replicas_for(allowed_weight(observation, decision), observation.spec.replicas),
            scaled_pods(observation, decision),
            route_pod(observation, decision),
        )
        replicas = decision.replicas_of(new) or 0
        if replicas > allowed:
            _fail(
                "canary pods beyond its step, its setCanaryScale and its header routes",
                observation,
                decision,
                canary=replicas,
                allowed=allowed,
            )
        return
    weight = allowed_weight(observation, decision)
    allowed = canary_replicas_for(weight, observation.spec.replicas)
    replicas = decision.replicas_of(new) or 0
    if replicas > allowed:
        _fail(
            "canary pods beyond its step (router none: pods are the traffic)",
            observation,
            decision,
            canary_replicas=replicas,
            allowed=allowed,
            weight=weight,
        )


def stable_keeps_serving(observation: Observation, decision: Decision) -> None:
    """Before the promotion the stable keeps what serves its share, never fewer pods than the canary
    cannot replace, and never goes to zero."""
    new, stable, spec = decision.canary_revision, decision.stable_revision, observation.spec
    if not new or spec.replicas == 0:
        return
    stable_replicas = decision.replicas_of(stable) or 0
    if dynamic_stable(observation) and decision.status.get("stage") == CANARY:
        needed = max(1, pods_for(decision.route_weights.stable, spec.replicas))
        if stable_replicas < needed:
            _fail(
                "the stable has fewer pods than its route share (dynamicStableScale)",
                observation,
                decision,
                stable_replicas=stable_replicas,
                route=decision.route_weights,
            )
        return
    if splits_by_weight(observation) or spec.blue_green is not None:
        if stable_replicas != spec.replicas:
            _fail("the stable shrank before the promotion", observation, decision, stable_replicas=stable_replicas)
        return
    weight = allowed_weight(observation, decision) if decision.status.get("stage") == CANARY else 0
    share = max(1, spec.replicas - canary_replicas_for(weight, spec.replicas))
    serving = available(observation, new)
    if stable_replicas < share or stable_replicas < spec.replicas - serving:
        _fail(
            "the stable gave up pods before the promotion",
            observation,
            decision,
            stable_replicas=stable_replicas,
            its_share=share,
            canary_available=serving,
            weight=weight,
        )


def capacity_follows_the_route(observation: Observation, decision: Decision, previous: Decision | None) -> None:
    """dynamicStableScale: the pods serving each revision never fall below its traffic share.

    - The stable asks for the pods of its share in the route written now and in the one written before.
    - Traffic moves back to the stable only as fast as its available pods carry it (unless the revision it
      leaves has no available pod): its share grows to at most what they carry.
    - A draining revision never gains a share, and keeps its pods while it has one.
    """
    if not dynamic_stable(observation) or observation.spec.replicas == 0:
        return
    replicas, stable, route = observation.spec.replicas, decision.stable_revision, decision.route_weights
    if previous is None or previous.stable_revision != stable:
        return
    before = previous.route_weights
    stable_replicas = decision.replicas_of(stable) or 0
    if stable_replicas < max(1, pods_for(max(route.stable, before.stable), replicas)):
        _fail(
            "the stable shrank below a route share written now or before (dynamicStableScale)",
            observation,
            decision,
            stable_replicas=stable_replicas,
            route=route,
            before=before,
        )
    leaving = services(previous).get("canary")
    returning = route.stable > before.stable and leaving not in (None, stable) and available(observation, leaving) > 0
    if returning and route.stable > max(before.stable, carried(observation, stable)):
        _fail(
            "traffic moved back to the stable faster than its pods became available (dynamicStableScale)",
            observation,
            decision,
            route=route,
            before=before,
            stable_available=available(observation, stable),
        )
    revision = draining(observation, decision)
    if revision and route.canary > 0:
        if services(previous).get("canary") == revision and route.canary > before.canary:
            _fail("a draining revision gained traffic", observation, decision, route=route, before=before)
        observed = next((d.spec_replicas for d in observation.deployments if d.revision == revision), 0)
        if (decision.replicas_of(revision) or 0) < observed:
            _fail(
                "a draining revision lost pods while it has a share",
                observation,
                decision,
                revision=revision,
                replicas=decision.replicas_of(revision),
                had=observed,
            )


def _new_abort(observation: Observation, decision: Decision) -> dict | None:
    after, before = decision.status.get("abort") or {}, observation.status.get("abort") or {}
    identity = ("revision", "time")
    if after and [after.get(key) for key in identity] != [before.get(key) for key in identity]:
        return after
    return None


def abort_is_immediate(observation: Observation, decision: Decision) -> None:
    """An abort, or a firing alarm during a rollout, sends 0% to the new revision in the same decision; with
    dynamicStableScale, all but the share the stable's available pods cannot carry yet
    (see `capacity_follows_the_route`)."""
    aborted = _new_abort(observation, decision)
    stable = decision.stable_revision
    running = bool(observation.status.get("canaryRevision")) or observation.spec.revision != stable
    alarm = bool(observation.firing_alerts) and running
    if aborted is None and not alarm:
        return
    new = aborted["revision"] if aborted else observation.status.get("canaryRevision") or observation.spec.revision
    if new == stable:
        return
    route, weights, wanted = decision.route_weights, decision.weights, services(decision)
    drain = drain_allowance(observation, decision)  # dynamicStableScale: what the stable cannot carry yet
    left = {
        "rollout still running": decision.canary_revision == new,
        "header routes": [r.name for r in decision.header_routes],
        "route canary": route.canary if route.canary > drain else 0,
        "mirror": route.mirror,
        "reported canary share": weights.canary if weights.canary > drain else 0,
        "active revision": decision.active_revision not in ("", stable),
        "Services selecting it": sorted(role for role in ("active", "stable") if wanted.get(role) == new),
    }
    if not splits_by_weight(observation) and observation.spec.blue_green is None:
        replicas = decision.replicas_of(new) or 0
        main_only_stable = wanted.get("active", None) == stable if wanted else False
        left["pods still in the main Service"] = replicas if replicas and not main_only_stable else 0
    if any(left.values()):
        why = f"abort {aborted.get('reason')}" if aborted else f"alarm {observation.firing_alerts}"
        _fail(f"traffic left on a revision after an {why}", observation, decision, revision=new, **left)


def deterministic(observation: Observation, decision: Decision) -> None:
    """The same observation decides the same; so does a restart that has only the stored JSON status; and
    deciding again on the decision's own status, nothing else changed, moves nothing (a fixpoint)."""
    if decide(observation) != decision:
        _fail("two decisions on one observation differ", observation, decision)
    stored = replace(observation, status=json.loads(json.dumps(observation.status)))
    if decide(stored) != decision:
        _fail("a restart from the stored status decides differently", observation, decision)
    again = decide(replace(observation, status=decision.status, request=None))
    if dynamic_stable(observation) and _moves(decision, stable=False) == _moves(again, stable=False):
        # With scaleDownDelaySeconds 0 the stable shrinks one decision after its route share fell: then nothing moves.
        decision, again = again, decide(replace(observation, status=again.status, request=None))
    if _moves(decision) != _moves(again):
        _fail(
            "deciding again on its own status moves the rollout",
            observation,
            decision,
            first=_moves(decision),
            again=_moves(again),
        )


def moves_are_told(observation: Observation, decision: Decision) -> None:
    """The decision log hides no move: a change of traffic share, revision or stage, an abort or a scaled
    Deployment each has its line; a decision that leaves all of them and the phase as they were has none."""
    entries = journal(observation, decision)
    told = {entry.change for entry in entries}
    before, after = observation.status, decision.status
    observed = {d.revision: d.spec_replicas for d in observation.deployments}
    wanted = {
        Change.WEIGHT: (before.get("weights") or {}) != (after.get("weights") or {}) and bool(before.get("weights")),
        Change.ABORTED: decision.aborted is not None,
        Change.PROMOTED: before.get("stableRevision") not in ("", None, decision.stable_revision),
        Change.SCALED: any(observed.get(d.revision, 0) != d.replicas for d in decision.deployments),
    }
    missing = [str(change) for change, happened in wanted.items() if happened and change not in told]
    if missing:
        _fail("a move the decision log does not tell", observation, decision, missing=missing)
    still = (
        not any(wanted.values())
        and not decision.measurements
        and all(before.get(key) == after.get(key) for key in ("phase", "stage", "currentStepIndex", "canaryRevision"))
        and [c.get("reason") for c in before.get("conditions") or []]
        == [c.get("reason") for c in after.get("conditions") or []]
    )
    if still and entries:
        _fail("the decision log tells of a decision that changed nothing", observation, decision, told=entries)


def _moves(decision: Decision, stable: bool = True) -> dict:
    status = decision.status
    kept = [d for d in decision.deployments if stable or d.revision != decision.stable_revision]
    return {
        "replicas": sorted((d.revision, d.replicas) for d in kept),
        "route": decision.route_weights,
        "header routes": decision.header_routes,
        "weights": decision.weights,
        "active": decision.active_revision,
        "revisions": (decision.stable_revision, decision.canary_revision),
        "stage": status.get("stage"),
        "step": status.get("currentStepIndex"),
    }


# --- a paused rollout does not move: needs the decisions before this one ---------------------------


@dataclass
class _Marks:
    """The most the new revision had, and the least the stable kept, at one stage and step of a rollout."""

    route_canary: int
    mirror: int
    header_routes: int
    canary_replicas: int
    stable_replicas: int
    active_new: bool


@dataclass
class Checker:
    """Runs every invariant on a decision; remembers the running rollout for `paused_stays_put`, and the routes
    written, for `stable_shrinks_after_the_delay`."""

    previous: Decision | None = None
    rollout: str = ""
    marks: dict = field(default_factory=dict)  # (stage, step) -> _Marks, for the running rollout
    routes: list = field(default_factory=list)  # (time, stable, canary, route canary) of every decision, in order

    def __call__(self, observation: Observation, decision: Decision, previous: Decision | None = None) -> None:
        check(observation, decision, previous)
        self.paused_stays_put(observation, decision)
        self.stable_shrinks_after_the_delay(observation, decision)

    def stable_shrinks_after_the_delay(self, observation: Observation, decision: Decision) -> None:
        """dynamicStableScale: the stable gives up pods only for a route share that has stood for
        scaleDownDelaySeconds (the data plane applies a route seconds after it is written): it keeps the pods
        of the largest share it had in every route of that window, and in the last route before it."""
        now, stable, new = observation.now, decision.stable_revision, decision.canary_revision
        self.routes.append((now, stable, new, decision.route_weights.canary))
        if not dynamic_stable(observation) or not new or decision.status.get("stage") != CANARY:
            return
        delay = observation.spec.canary.scale_down_delay_seconds
        same = [(at, weight) for at, s, c, weight in self.routes if (s, c) == (stable, new)]
        before = [weight for at, weight in same if (now - at).total_seconds() >= delay][-1:]
        window = [weight for at, weight in same if (now - at).total_seconds() < delay]
        floor = min(before + window)
        stable_replicas = decision.replicas_of(stable) or 0
        if stable_replicas < max(1, pods_for(100 - floor, observation.spec.replicas)):
            _fail(
                "the stable gave up pods for a route share younger than scaleDownDelaySeconds (dynamicStableScale)",
                observation,
                decision,
                stable_replicas=stable_replicas,
                smallest_canary_share_in_the_window=floor,
                delay=delay,
            )

    def paused_stays_put(self, observation: Observation, decision: Decision) -> None:
        """While a rollout waits for a person (phase Paused, no request in between), nothing moves toward the
        new revision: no step or stage, no more route weight, mirror, header routes or canary pods, no fewer
        stable pods, no switch. Only what it had at this step already may come back (a route drops to 0%
        while the canary's pods are all lost, and returns with them; without a router the stable covers for
        them meanwhile)."""
        new, stable, previous = decision.canary_revision, decision.stable_revision, self.previous
        self.previous = decision
        if new != self.rollout:
            self.rollout, self.marks = new, {}  # another rollout: start afresh
        if not new:
            return
        key = (decision.status.get("stage"), decision.status.get("currentStepIndex"))
        now = _Marks(
            decision.route_weights.canary,
            decision.route_weights.mirror,
            len(decision.header_routes),
            decision.replicas_of(new) or 0,
            decision.replicas_of(stable) or 0,
            decision.active_revision == new,
        )
        marks = self.marks.get(key) or now
        self.marks[key] = _Marks(  # recorded before any check fails, so a caller that goes on stays consistent
            max(marks.route_canary, now.route_canary),
            max(marks.mirror, now.mirror),
            max(marks.header_routes, now.header_routes),
            max(marks.canary_replicas, now.canary_replicas),
            min(marks.stable_replicas, now.stable_replicas),
            marks.active_new or now.active_new,
        )
        had = (previous.replicas_of(new) or 0) if previous is not None and previous.canary_revision == new else 0
        self._no_new_pods_while_paused(observation, decision, had)
        paused = (
            previous is not None
            and observation.request is None
            and previous.canary_revision == new
            and previous.status.get("phase") == decision.status.get("phase") == PAUSED
        )
        if not paused:
            return
        before = (previous.status.get("stage"), previous.status.get("currentStepIndex"))
        if before != key:
            _fail("a paused rollout moved to another stage or step", observation, decision, before=before)
        moved = {
            name: (getattr(marks, name), getattr(now, name))
            for name in ("route_canary", "mirror", "header_routes", "canary_replicas", "active_new")
            if getattr(now, name) > getattr(marks, name)
        }
        # dynamicStableScale: the stable may shrink to the share the route left it at this step, no further.
        floor = marks.stable_replicas
        if dynamic_stable(observation):
            floor = min(floor, max(1, pods_for(100 - marks.route_canary, observation.spec.replicas)))
        if now.stable_replicas < floor:
            moved["stable_replicas"] = (marks.stable_replicas, now.stable_replicas)
        if moved:
            _fail("a paused rollout moved toward the new revision (was, now)", observation, decision, **moved)

    @staticmethod
    def _no_new_pods_while_paused(observation: Observation, decision: Decision, had: int) -> None:
        """Without a router pods are traffic: while waiting for a person, the canary gets no pods beyond the
        weight reached that it did not have in the rollout's previous decision (a rollout that starts under a
        person's pause, or pauses on inconclusive checks, does not prepare the next step's pods)."""
        if (
            splits_by_weight(observation)
            or observation.spec.blue_green is not None
            or observation.request is not None
            or decision.status.get("phase") != PAUSED
            or decision.status.get("stage") != CANARY
        ):
            return
        reached = canary_replicas_for(reached_weight(observation, decision), observation.spec.replicas)
        replicas = decision.replicas_of(decision.canary_revision) or 0
        if replicas > max(reached, had):
            _fail(
                "a paused rollout prepared canary pods for a step it has not completed (router none: pods are traffic)",
                observation,
                decision,
                canary_replicas=replicas,
                for_weight_reached=reached,
                in_previous_decision=had,
            )


def every(*checks):
    """One check made of several, run in order on each decision."""

    def run(observation: Observation, decision: Decision, previous: Decision | None = None) -> None:
        for each in checks:
            each(observation, decision, previous)

    return run


def check(observation: Observation, decision: Decision, previous: Decision | None) -> None:
    """Every invariant but the pause rule, which needs a `Checker`'s memory."""
    no_traffic_without_pods(observation, decision)
    mirror_only_where_declared(observation, decision)
    sticky_only_with_a_weight(observation, decision)
    share_within_the_step(observation, decision)
    stable_keeps_serving(observation, decision)
    capacity_follows_the_route(observation, decision, previous)
    abort_is_immediate(observation, decision)
    deterministic(observation, decision)
    moves_are_told(observation, decision)


def timed(step) -> float:
    """How long a canary step holds by the clock (a timed pause, an experiment); 0 for the others."""
    duration = getattr(step, "duration", None)
    return float(duration or 0) if type(step).__name__ in ("Pause", "Experiment") else 0.0


@dataclass
class TimedSteps:
    """A timed canary step lasts its duration: a rollout leaves a `pause: {duration}` or an experiment no sooner
    than that long after it began, by the world's clock (not the whole seconds a status stores), unless a
    person acted while it ran (a promote skips it). Leaving forward means a later step, or the promotion."""

    rollout: str = ""
    began: dict = field(default_factory=dict)  # step index -> (when it began, a person acted meanwhile)

    def __call__(self, observation: Observation, decision: Decision, previous: Decision | None = None) -> None:
        new, stage = decision.canary_revision, decision.status.get("stage")
        if "RolloutStarted" in [event.reason for event in decision.events] or new != self.rollout:
            self.rollout, self.began = new, {}
        if observation.request is not None:
            self.began = {index: (at, True) for index, (at, _) in self.began.items()}
        steps = steps_of(observation)
        if stage == CANARY:
            index = int(decision.status.get("currentStepIndex") or 0)
        elif stage == "Promoting" and self.began:
            index = len(steps)  # left the last step forward
        else:
            self.began = {}  # aborted, shadow, preview or idle: a later canary starts afresh
            return
        if index in self.began:
            return
        left = [i for i in self.began if i < index]
        if left:
            last = max(left)
            at, asked = self.began[last]
            # The step left ran from `at`; any step passed through in this same decision ran for no time at all.
            for passed in range(last, index):
                step = steps[passed] if passed < len(steps) else None
                elapsed = (observation.now - (at if passed == last else observation.now)).total_seconds()
                if step is not None and not asked and elapsed < timed(step):
                    _fail(
                        "a timed canary step ended before its duration",
                        observation,
                        decision,
                        step=passed,
                        duration=timed(step),
                        elapsed=elapsed,
                    )
        self.began[index] = (observation.now, observation.request is not None)


@dataclass
class HookLedger:
    """Gating hooks hold traffic: what the hooks' side answered (the World's log of calls, shared), and
    the traffic each decision gives the new revision.

    - No mirror, live weight or switch reaches a revision before each of its `preRollout` hooks answered 2xx.
    - Each new high of a revision's route weight needs one more step whose `preTrafficIncrease` hooks all
      answered 2xx; a promotion or blue/green switch needs its `prePromotion` hooks' 2xx.
    - No hook is called again at a point (and step) where it answered 2xx, within one rollout.
    A failed hook a person skipped (promote while paused on it) counts as answered.
    """

    calls: list  # (HookCall, HookAnswer), appended by the World
    seen: int = 0
    passed: set = field(default_factory=set)  # (revision, point, step, hook)
    failed: set = field(default_factory=set)
    highest: dict = field(default_factory=dict)  # revision -> highest route canary weight so far
    increases: dict = field(default_factory=dict)  # revision -> new highs so far

    def __call__(self, observation: Observation, decision: Decision, previous: Decision | None = None) -> None:
        if "RolloutStarted" in [event.reason for event in decision.events]:
            self._forget(observation.spec.revision)
        self._skips(observation, previous)
        for call, answer in self.calls[self.seen :]:
            key = (call.revision, str(call.point), call.step, call.hook.name)
            if key in self.passed:
                _fail("a hook was called again where it had answered 2xx", observation, decision, hook=key)
            if not answer.pending:  # a Job hook's Job still runs: neither passed nor failed
                (self.passed if answer.ok else self.failed).add(key)
        self.seen = len(self.calls)
        self._traffic(observation, decision, previous)

    def _forget(self, revision: str) -> None:
        self.passed = {key for key in self.passed if key[0] != revision}
        self.failed = {key for key in self.failed if key[0] != revision}
        self.highest.pop(revision, None)
        self.increases.pop(revision, None)

    def _skips(self, observation: Observation, previous: Decision | None) -> None:
        request = observation.request
        if request is None or request.action not in ("promote", "promote-full") or previous is None:
            return
        if any(pause.get("reason") == "HookFailed" for pause in previous.status.get("pauseReasons") or []):
            self.passed |= {key for key in self.failed if key[0] == previous.canary_revision}

    def _missing(self, revision: str, point: str, observation: Observation, step=None) -> list[str]:
        hooks = [hook.name for hook in observation.spec.hooks if point in hook.at]
        return [name for name in hooks if (revision, point, step, name) not in self.passed]

    def _traffic(self, observation: Observation, decision: Decision, previous: Decision | None) -> None:
        new, route = decision.canary_revision, decision.route_weights
        splits = splits_by_weight(observation)
        if new:
            reached = splits and (route.canary > 0 or route.mirror > 0 or bool(decision.header_routes))
            if reached or decision.active_revision == new:
                missing = self._missing(new, "preRollout", observation)
                if missing:
                    _fail(
                        "traffic reached a revision before its preRollout hooks answered 2xx",
                        observation,
                        decision,
                        hooks=missing,
                    )
            if splits and route.canary > self.highest.get(new, 0):
                self.highest[new] = route.canary
                self.increases[new] = self.increases.get(new, 0) + 1
                for hook in (h for h in observation.spec.hooks if "preTrafficIncrease" in h.at):
                    steps = {
                        key[2]
                        for key in self.passed
                        if key[0] == new and key[1] == "preTrafficIncrease" and key[3] == hook.name
                    }
                    if len(steps) < self.increases[new]:
                        _fail(
                            "a route weight rose without its preTrafficIncrease hook's 2xx",
                            observation,
                            decision,
                            hook=hook.name,
                            increases=self.increases[new],
                            steps_answered=sorted(steps),
                        )
            switched = decision.active_revision == new and (previous is None or previous.active_revision != new)
            if switched and self._missing(new, "prePromotion", observation):
                _fail("a blue/green switch before the prePromotion hooks answered 2xx", observation, decision)
        promoted = previous.canary_revision if previous is not None else ""
        if promoted and decision.stable_revision == promoted and previous.stable_revision != promoted:
            missing = self._missing(promoted, "prePromotion", observation) + self._missing(
                promoted, "preRollout", observation
            )
            if missing:
                _fail("a promotion before the prePromotion hooks answered 2xx", observation, decision, hooks=missing)
