"""The rollout's safety invariants, checked on one decision against the observation it was made from.

Each check raises an AssertionError naming the invariant and the values. `check` runs them all; the
World calls it after every decision in the property tests. The rounding without a router is the
documented one: the canary runs ⌈replicas·w/100⌉ pods (at least 1 when w > 0) and the stable keeps
the rest, never fewer than one pod, before the promotion.
"""

from __future__ import annotations

import json
from dataclasses import replace

from modelrollout.core.enums import Phase, ServiceRole, Stage
from modelrollout.core.observed import Observation
from modelrollout.core.rollout import Decision, canary_replicas_for, decide
from modelrollout.core.routers import traits_of
from modelrollout.core.spec import SetWeight


def available(observation: Observation, revision: str) -> int:
    return next((d.available_replicas for d in observation.deployments if d.revision == revision), 0)


def _fail(invariant: str, observation: Observation, decision: Decision, **values) -> None:
    shown = ", ".join(f"{key}={value!r}" for key, value in values.items())
    status = decision.status
    raise AssertionError(
        f"{invariant}: {shown}; router {observation.spec.router}, replicas {observation.spec.replicas}, "
        f"stage {status.get('stage')!r} step {status.get('currentStepIndex')} phase {status.get('phase')}: "
        f"{status.get('message')}"
    )


def no_traffic_without_pods(observation: Observation, decision: Decision) -> None:
    """No route weight, mirror, active Service or reported share goes to a new revision with no available pod."""
    new = decision.canary_revision
    if not new:
        if decision.route_weights.canary or decision.route_weights.mirror or decision.weights.canary:
            _fail("traffic to a canary while none runs", observation, decision, route=decision.route_weights)
        if decision.services.get(ServiceRole.ACTIVE) != decision.stable_revision:
            _fail("the active Service selects more than the stable revision", observation, decision)
        return
    if available(observation, new) > 0:
        return
    takers = {
        "route canary weight": decision.route_weights.canary,
        "mirror": decision.route_weights.mirror,
        "reported canary share": decision.weights.canary,
        "active Service": decision.active_revision == new,
        "stable Service": decision.services.get(ServiceRole.STABLE) == new,
    }
    if any(takers.values()):
        _fail("traffic to a revision with no available pod", observation, decision, new=new, **takers)


def share_within_the_step(observation: Observation, decision: Decision) -> None:
    """Before promotion the new revision gets no more than the setWeight the rollout has reached."""
    status, spec = decision.status, observation.spec
    intent = status["intent"]
    if (
        decision.route_weights.canary > intent["canaryWeight"]
        or decision.route_weights.mirror > intent["mirrorPercent"]
    ):
        _fail("route beyond the intent", observation, decision, route=decision.route_weights, intent=intent)
    if not decision.canary_revision or status["stage"] != Stage.CANARY:
        return
    steps = spec.canary.steps if spec.canary else ()
    step = status["currentStepIndex"]
    reached = max((s.weight for s in steps[:step] if isinstance(s, SetWeight)), default=0)
    if intent["canaryWeight"] > reached:
        _fail("intent beyond the setWeight reached", observation, decision, intent=intent, reached=reached)
    if step >= len(steps):
        return  # all steps done: the canary scales to full size before the promotion
    preparing = steps[step].weight if isinstance(steps[step], SetWeight) else 0
    allowed = canary_replicas_for(max(reached, preparing), spec.replicas)
    replicas = decision.replicas_of(decision.canary_revision) or 0
    if replicas > allowed:
        _fail("canary pods beyond its step", observation, decision, replicas=replicas, allowed=allowed)


def stable_keeps_serving(observation: Observation, decision: Decision) -> None:
    """Before the promotion the stable keeps what serves its share, and never goes to zero."""
    new, stable, spec = decision.canary_revision, decision.stable_revision, observation.spec
    if not new or spec.replicas == 0:
        return
    stable_replicas = decision.replicas_of(stable) or 0
    if traits_of(spec.router).splits_by_weight or spec.blue_green is not None:
        if stable_replicas != spec.replicas:
            _fail("the stable shrank before the promotion", observation, decision, stable=stable_replicas)
        return
    canary_replicas = decision.replicas_of(new) or 0
    if stable_replicas < 1 or stable_replicas + canary_replicas < spec.replicas:
        _fail(
            "the stable gave up pods the canary does not have",
            observation,
            decision,
            stable=stable_replicas,
            canary=canary_replicas,
        )


def abort_is_immediate(observation: Observation, decision: Decision) -> None:
    """An abort or a firing alarm takes every share off the new revision in the same decision."""
    if decision.aborted is None and not observation.firing_alerts:
        return
    if decision.canary_revision:
        _fail("a rollout survived an abort or a firing alarm", observation, decision, alerts=observation.firing_alerts)
    aborted = (decision.status.get("abort") or {}).get("revision", "")
    selected = [role for role, revision in decision.services.items() if revision in (aborted, None) and aborted]
    if decision.route_weights != type(decision.route_weights)() or decision.weights.canary or selected:
        _fail(
            "traffic left on an aborted revision",
            observation,
            decision,
            route=decision.route_weights,
            selected=selected,
        )


def paused_stays_put(observation: Observation, decision: Decision, previous: Decision | None) -> None:
    """While a rollout waits for a person, nothing moves toward the new revision."""
    if previous is None or observation.request is not None:
        return
    both_paused = decision.status["phase"] == previous.status["phase"] == Phase.PAUSED
    same = decision.canary_revision and decision.canary_revision == previous.canary_revision
    if not (both_paused and same):
        return
    new, stable = decision.canary_revision, decision.stable_revision
    moved = {
        "intent canary weight": (previous.status["intent"]["canaryWeight"], decision.status["intent"]["canaryWeight"]),
        "intent mirror": (previous.status["intent"]["mirrorPercent"], decision.status["intent"]["mirrorPercent"]),
        "canary replicas": (previous.replicas_of(new) or 0, decision.replicas_of(new) or 0),
    }
    grew = {name: pair for name, pair in moved.items() if pair[1] > pair[0]}
    # The stable may give back pods it took over while canary pods were lost, down to its share of the
    # intended weight, never below it: that is the split the rollout decided, not a move past it.
    share = observation.spec.replicas
    if not traits_of(observation.spec.router).splits_by_weight and observation.spec.blue_green is None:
        intended = canary_replicas_for(decision.status["intent"]["canaryWeight"], share)
        share = max(1, share - intended)
    stable_now = decision.replicas_of(stable) or 0
    shrank = stable_now < (previous.replicas_of(stable) or 0) and stable_now < share
    switched = decision.active_revision == new != previous.active_revision
    if grew or shrank or switched:
        _fail("a paused rollout moved", observation, decision, grew=grew, stable_shrank=shrank, switched=switched)


def deterministic(observation: Observation, decision: Decision) -> None:
    """The same observation decides the same, and so does a restart that has only the stored JSON status."""
    if decide(observation) != decision:
        _fail("two decisions on one observation differ", observation, decision)
    stored = replace(observation, status=json.loads(json.dumps(observation.status)))
    if decide(stored) != decision:
        _fail("a restart from the stored status decides differently", observation, decision)


def check(observation: Observation, decision: Decision, previous: Decision | None) -> None:
    no_traffic_without_pods(observation, decision)
    share_within_the_step(observation, decision)
    stable_keeps_serving(observation, decision)
    abort_is_immediate(observation, decision)
    paused_stays_put(observation, decision, previous)
    deterministic(observation, decision)
