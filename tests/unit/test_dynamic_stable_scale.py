"""dynamicStableScale: the stable runs only the pods its route share needs, shrinking once traffic has
left it for the scale-down delay; an abort brings its pods back first and traffic follows them; a new
rollout waits for the revision traffic left to drain."""

from __future__ import annotations

from modelrollout.core.labels import REVISION_LABEL
from modelrollout.core.observed import Request
from modelrollout.core.rollout import canary_replicas_for
from modelrollout.plugin import format_status
from tests.unit.world import World, make_spec

STEPS = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}, {"setWeight": 100}, {"pause": {}}]
REPLICAS = 10
DELAY = 45  # scaleDownDelaySeconds: how long a route stands before the stable gives up pods for it
ABORT_DELAY = 30  # abortScaleDownDelaySeconds, the default


def spec(version: str, steps=STEPS, dynamic=True, router=True):
    strategy = {"canary": {"steps": steps, "dynamicStableScale": dynamic, "scaleDownDelaySeconds": DELAY}}
    return make_spec(version=version, replicas=REPLICAS, strategy=strategy, router=router)


def rolling(**options) -> tuple[World, str, str]:
    world = World(spec("1", **options))
    world.run()
    stable = world.spec.revision
    world.spec = spec("2", **options)
    return world, stable, world.spec.revision


def settled(world: World):
    """The routes written so far stand for the scale-down delay."""
    world.advance(DELAY)
    return world.run()


def at_half() -> tuple[World, str, str]:
    """At 50% for the scale-down delay: the stable runs 5 pods, the canary 5."""
    world, stable, new = rolling()
    world.run()
    world.ask("promote")
    settled(world)
    return world, stable, new


def draining_at_half() -> tuple[World, str, str]:
    """Aborted at 50%, the stable's new pods not ready yet: the aborted revision keeps 50%."""
    world, stable, new = at_half()
    world.unready.add(stable)
    world.ask("abort")
    return world, stable, new


def test_the_stable_shrinks_once_the_route_has_stood_for_the_scale_down_delay():
    world, stable, new = rolling()
    moved = world.step()
    while moved.route_weights.canary == 0:  # the canary's pods come up first
        moved = world.step()
    assert moved.route_weights.canary == 20 and moved.replicas_of(stable) == REPLICAS  # traffic first
    assert moved.requeue_after == DELAY
    world.advance(DELAY - 1)
    assert world.run().replicas_of(stable) == REPLICAS  # the data plane may not have applied the route yet
    shrunk = settled(world)
    assert shrunk.route_weights.canary == 20 and shrunk.replicas_of(stable) == 8 and shrunk.replicas_of(new) == 2
    assert shrunk.status["canaryRoute"]["weight"] == shrunk.status["canaryRoute"]["settled"] == 20
    half = world.ask("promote")
    assert (half.route_weights.canary, half.replicas_of(stable), half.replicas_of(new)) == (50, 8, 5)
    assert settled(world).replicas_of(stable) == 5
    world.ask("promote")
    full = settled(world)
    assert full.route_weights.canary == 100 and full.replicas_of(stable) == 1  # never its last pod before promotion


def test_a_restart_keeps_the_time_the_route_moved():
    world, stable, _ = rolling()
    world.run()
    world.advance(DELAY - 1)
    world.restart()
    assert world.run().replicas_of(stable) == REPLICAS
    world.restart()
    assert settled(world).replicas_of(stable) == 8


def test_without_it_the_stable_keeps_every_pod_until_the_promotion():
    world, stable, _ = rolling(dynamic=False)
    world.run()
    assert world.ask("promote").replicas_of(stable) == REPLICAS and world.status["canaryRoute"] is None


def test_an_abort_brings_the_stable_back_first_and_traffic_follows_its_pods():
    world, stable, new = at_half()
    assert world.decision.replicas_of(stable) == 5
    world.unready.add(stable)  # its new pods take a while
    world.request = Request(action="abort", id="abort-1", actor="alice")
    (event,) = [event for event in world.step().events if event.reason == "RolloutAborted"]
    assert "as fast as its pods become available (dynamicStableScale)" in event.message
    aborted = world.run()
    assert aborted.replicas_of(stable) == REPLICAS and aborted.canary_revision == ""
    assert aborted.route_weights.canary == 50 and aborted.services["canary"] == new  # 5 stable pods carry 50%
    assert aborted.replicas_of(new) == 5  # the aborted revision keeps its pods while it has a share
    assert "takes all traffic as its pods come up: revision" in aborted.status["message"]
    assert "keeps 50% until stable revision" in aborted.status["message"]
    assert "serves all traffic" not in aborted.status["message"]
    assert "traffic moves back to" in aborted.status["lastRequest"]["message"]
    world.advance(2)
    assert world.run().status == aborted.status | {"conditions": world.status["conditions"]}  # no churn meanwhile
    world.unready.discard(stable)
    world.ready_per_step = 2
    shares = []
    while world.status["weights"]["canary"] > 0:
        world.advance(2)
        shares.append(world.step().route_weights.canary)
    assert shares == [50, 30, 10, 0]  # 5, 7, 9, then 10 stable pods available (two more each time)
    drained = world.decision
    assert drained.replicas_of(new) == 5 and drained.services["canary"] == stable
    world.advance(ABORT_DELAY - 1)  # the abort delay counts from the decision its share reached 0% in
    assert world.run().replicas_of(new) == 5
    world.advance(1)
    assert world.run().replicas_of(new) == 0


def test_an_abort_with_a_stable_that_can_carry_everything_goes_to_zero_in_the_same_decision():
    world, stable, new = rolling(steps=[{"setWeight": 5}, {"pause": {}}])
    at_five = world.run()
    assert at_five.route_weights.canary == 5 and at_five.replicas_of(stable) == REPLICAS  # 95% needs all 10
    world.request = Request(action="abort", id="abort-1", actor="alice")
    aborted = world.step()
    assert aborted.route_weights.canary == 0 and aborted.services["canary"] == stable
    assert aborted.status["lastRequest"]["message"] == f"revision {new} aborted; traffic is back on {stable}"


def test_a_new_version_waits_for_the_one_traffic_is_leaving_to_drain():
    world, stable, old = at_half()
    world.unready.add(stable)
    world.spec = spec("3")
    waiting = world.run()
    assert waiting.canary_revision == "" and waiting.route_weights.canary == 50
    assert waiting.services["canary"] == old and waiting.status["phase"] == "Progressing"
    assert "starts once revision" in waiting.status["message"] and old in waiting.status["message"]
    assert waiting.replicas_of(world.spec.revision) == 0
    world.unready.discard(stable)
    started = world.run()
    assert started.canary_revision == world.spec.revision and started.route_weights.canary == 20
    assert started.services["canary"] == world.spec.revision


def test_retry_is_refused_while_the_aborted_revision_drains():
    world, stable, _ = draining_at_half()
    refused = world.ask("retry")
    assert refused.status["lastRequest"]["accepted"] is False
    assert "retry once it has drained" in refused.status["lastRequest"]["message"]
    world.unready.discard(stable)
    world.run()
    assert world.ask("retry").status["lastRequest"]["accepted"] is True


def test_a_canary_with_no_pod_left_takes_no_share_and_the_stable_scales_up_at_once():
    world, stable, new = at_half()
    world.unready.add(new)
    world.lose_pods(new, REPLICAS)
    lost = world.step()
    assert lost.route_weights.canary == 0 and lost.replicas_of(stable) == REPLICAS


def test_the_peak_pod_count_is_the_fleet_plus_one_step_of_canary_pods():
    """The worst case the README states, for steps at least the scale-down delay apart: the canary's pods for
    the next step come up before the stable gives up its own, so at most replicas + the pods of the largest
    weight increase + one (rounding up both sides)."""
    world, _, _ = rolling()
    peaks = []
    world.check = lambda observation, decision, previous: peaks.append(sum(d.replicas for d in decision.deployments))
    settled(world)
    for _ in range(4):  # 50%, 100%, the last pause, the promotion
        world.ask("promote")
        settled(world)
    assert world.decision.stable_revision == world.spec.revision  # promoted
    increases = [20, 30, 50]
    bound = REPLICAS + max(canary_replicas_for(step, REPLICAS) for step in increases) + 1
    assert max(peaks) <= bound and max(peaks) < 2 * REPLICAS


def test_the_plugin_shows_the_capacity_mode_and_the_revision_draining():
    world, _, new = draining_at_half()
    body = {
        "metadata": {"name": "fraud", "namespace": "models"},
        "spec": {"replicas": REPLICAS, "strategy": {"canary": {"steps": STEPS, "dynamicStableScale": True}}},
        "status": world.status,
    }
    deployments = [
        {
            "metadata": {"labels": {REVISION_LABEL: d.revision}},
            "spec": {"replicas": d.spec_replicas},
            "status": {"availableReplicas": d.available_replicas},
        }
        for d in world.deployments.values()
    ]
    shown = format_status(body, deployments)
    assert "Capacity:    dynamicStableScale (the stable runs the pods of its route share)" in shown
    assert (
        f"stable 5/{REPLICAS} available, draining {new} 5/5 available (keeps 50% until the stable can carry it)"
        in shown
    )


def test_the_scale_subresource_counts_and_selects_every_revision_so_an_hpa_sizes_for_the_whole_load():
    """An HPA multiplies status.replicas by its metric averaged over the pods status.selector matches. Counting
    the stable alone mid-rollout would size the fleet for the stable's share; with dynamicStableScale that
    shrinks spec.replicas at every HPA sync, and the stable with it."""
    world, stable, new = at_half()
    half = world.decision
    assert (half.replicas_of(stable), half.replicas_of(new)) == (5, 5)
    assert half.status["replicas"] == REPLICAS and half.status["selector"] == "modelrollout.io/deployment=fraud"


def test_the_delay_is_never_shorter_than_set_though_the_status_keeps_whole_seconds():
    """Found by the live test: `since` was stored cut to the second, so the stable shrank up to 1 s early."""
    world, stable, _ = rolling()
    world.advance(0.5)
    moved = world.run()
    assert moved.route_weights.canary == 20 and moved.replicas_of(stable) == REPLICAS
    world.advance(DELAY - 0.25)
    assert world.run().replicas_of(stable) == REPLICAS
    world.advance(1)
    assert world.run().replicas_of(stable) == 8
