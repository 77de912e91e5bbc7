"""setCanaryScale: the canary's pods apart from its traffic (warming a GPU model before it gets any), never
fewer than its share needs, back to the share with matchTrafficWeight, and only with a router."""

from __future__ import annotations

import pytest

from modelrollout.core.spec import SetCanaryScale, parse_step
from tests.unit.world import World, make_spec


def rolling(steps: list[dict], router=True) -> tuple[World, str]:
    world = World(make_spec(version="1", replicas=10, steps=steps, router=router))
    world.run()
    world.spec = make_spec(version="2", replicas=10, steps=steps, router=router)
    return world, world.spec.revision


def test_a_canary_warms_its_pods_before_any_traffic_and_keeps_them_through_small_weights():
    world, new = rolling([{"setCanaryScale": {"replicas": 3}}, {"pause": {}}, {"setWeight": 10}, {"pause": {}}])
    warmed = world.run()
    assert warmed.status["phase"] == "Paused" and warmed.replicas_of(new) == 3
    assert warmed.route_weights.canary == 0 and world.deployments[new].available_replicas == 3
    at_ten = world.ask("promote")
    assert at_ten.route_weights.canary == 10 and at_ten.replicas_of(new) == 3  # 1 pod would do; 3 stay warm
    assert at_ten.status["intent"]["canaryScale"] == {"replicas": 3}


def test_a_scale_below_the_share_is_raised_to_it_and_match_traffic_weight_returns_to_the_share():
    steps = [
        {"setWeight": 50},
        {"setCanaryScale": {"replicas": 1}},
        {"pause": {}},
        {"setCanaryScale": {"weight": 80}},
        {"pause": {}},
        {"setCanaryScale": {"matchTrafficWeight": True}},
        {"pause": {}},
    ]
    world, new = rolling(steps)
    assert world.run().replicas_of(new) == 5  # 1 asked, 50% of 10 needed
    assert world.ask("promote").replicas_of(new) == 8
    matched = world.ask("promote")
    assert matched.replicas_of(new) == 5 and "canaryScale" not in matched.status["intent"]


def test_an_abort_and_a_restart_keep_to_the_intent():
    world, new = rolling([{"setCanaryScale": {"weight": 40}}, {"pause": {}}])
    world.run()
    world.restart()
    assert world.run().replicas_of(new) == 4
    aborted = world.ask("abort")
    assert aborted.route_weights.canary == 0 and "canaryScale" not in aborted.status["intent"]


def test_without_a_router_pods_are_the_traffic_so_the_scale_is_not_applied():
    world, new = rolling([{"setCanaryScale": {"replicas": 6}}, {"pause": {}}], router=False)
    assert world.run().replicas_of(new) == 0


@pytest.mark.parametrize(
    ("body", "pods"),
    [({"replicas": 12}, 10), ({"replicas": 2}, 2), ({"weight": 25}, 3), ({"matchTrafficWeight": True}, 0)],
)
def test_a_scale_step_asks_for_at_most_every_replica(body, pods):
    step = parse_step({"setCanaryScale": body})
    assert isinstance(step, SetCanaryScale) and step.pods(10) == pods
