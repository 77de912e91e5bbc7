"""Sticky cohorts in the core: the stickiness is written only while the canary has a route weight, so
users who arrived at 0% carry no cookie into the split and an abort sends everyone to the stable."""

from __future__ import annotations

from modelrollout.core.cohorts import SessionAffinity
from tests.unit.world import World, make_spec

STICKY = {"cookieName": "model-cohort", "maxAge": 3600}
STEPS = [{"pause": {}}, {"setWeight": 30}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]


def canary(steps, **extra) -> dict:
    return {"canary": {"steps": steps, **extra}}


def rolling() -> tuple[World, str]:
    world = World(make_spec(version="1", router="traefik", strategy=canary(STEPS, sessionAffinity=STICKY)))
    world.run()
    world.spec = make_spec(version="2", router="traefik", strategy=canary(STEPS, sessionAffinity=STICKY))
    return world, world.spec.revision


def test_the_cookie_is_written_from_the_first_weight_on_and_kept_through_the_steps():
    world, _ = rolling()
    assert world.run().affinity is None  # 0%: nobody is sorted into a cohort yet
    at_thirty = world.ask("promote")
    assert (at_thirty.route_weights.canary, at_thirty.affinity) == (30, SessionAffinity("model-cohort", 3600))
    assert world.ask("promote").affinity == SessionAffinity("model-cohort", 3600)


def test_an_abort_drops_the_stickiness_in_the_same_decision():
    world, _ = rolling()
    world.run()
    world.ask("promote")
    aborted = world.ask("abort")
    assert (aborted.route_weights.canary, aborted.affinity) == (0, None)


def test_a_canary_that_lost_its_pods_is_not_sticky_while_its_weight_falls_back():
    world, new = rolling()
    world.run()
    world.ask("promote")
    world.lose_pods(new, 10)
    world.unready.add(new)
    lost = world.step()
    assert (lost.route_weights.canary, lost.affinity) == (0, None)


def test_without_session_affinity_nothing_is_sticky():
    world = World(make_spec(version="1", router="traefik", strategy=canary(STEPS)))
    world.run()
    world.spec = make_spec(version="2", router="traefik", strategy=canary(STEPS))
    world.run()
    assert world.ask("promote").affinity is None
