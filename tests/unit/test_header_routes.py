"""Header routes and dark launches in the core: a route reaches the canary only once a canary pod is
available, stays put while paused, survives a restart as intent, and ends with the rollout."""

from __future__ import annotations

import re

import pytest

from modelrollout.core.headerroutes import HeaderMatch, HeaderRoute, MatchKind, SetHeaderRoute
from modelrollout.core.spec import parse_step
from tests.unit.world import World, make_spec

QA = {"name": "qa", "match": [{"headerName": "x-model-qa", "headerValue": {"exact": "yes"}}]}
QA_ROUTE = HeaderRoute("qa", (HeaderMatch("x-model-qa", "yes"),))
DARK_LAUNCH = [
    {"setHeaderRoute": QA},
    {"pause": {}},
    {"setHeaderRoute": {"name": "qa"}},
    {"setWeight": 20},
    {"pause": {}},
]


def rolling(steps: list[dict], router=True, replicas=10) -> tuple[World, str]:
    world = World(make_spec(version="1", replicas=replicas, steps=steps, router=router))
    world.run()
    world.spec = make_spec(version="2", replicas=replicas, steps=steps, router=router)
    return world, world.spec.revision


def test_a_dark_launch_routes_matched_requests_only_then_takes_the_normal_steps():
    world, new = rolling(DARK_LAUNCH)
    dark = world.run()
    assert dark.status["phase"] == "Paused" and dark.route_weights.canary == 0
    assert dark.header_routes == (QA_ROUTE,) and dark.replicas_of(new) == 1  # one pod serves the matched requests
    assert dark.status["intent"]["headerRoutes"] == [QA]
    live = world.ask("promote")
    assert live.header_routes == () and live.route_weights.canary == 20 and live.replicas_of(new) == 2
    assert "headerRoutes" not in live.status["intent"]


def test_promote_full_removes_the_routes_the_skipped_steps_touch():
    """Found by the property tests: promote-full skipped the step removing QA's route, and the route stayed
    in place while the canary scaled up for the promotion. A skipped step that adds a route adds nothing:
    that would be traffic before its hooks."""
    world, new = rolling(DARK_LAUNCH)
    assert world.run().header_routes == (QA_ROUTE,)
    world.unready.add(new)  # the canary's pods for the promotion take a while
    skipped = world.ask("promote-full")
    assert skipped.status["currentStepIndex"] == len(DARK_LAUNCH) and skipped.canary_revision == new
    assert skipped.header_routes == () and "headerRoutes" not in skipped.status["intent"]


def test_promote_full_adds_no_route_a_skipped_step_would_add():
    world, new = rolling([{"pause": {}}, {"setHeaderRoute": QA}, {"pause": {}}])
    assert world.run().status["phase"] == "Paused"
    world.unready.add(new)
    skipped = world.ask("promote-full")
    assert skipped.status["currentStepIndex"] == 3 and skipped.canary_revision == new
    assert skipped.header_routes == () and "headerRoutes" not in skipped.status["intent"]


def test_a_route_waits_for_a_canary_pod_and_is_never_rendered_without_one():
    world, new = rolling(DARK_LAUNCH)
    world.unready.add(new)
    waiting = world.run()
    assert waiting.header_routes == () and waiting.replicas_of(new) == 1
    assert "waiting for 1 canary pods to be available" in waiting.status["message"]
    world.unready.clear()
    assert world.run().header_routes == (QA_ROUTE,)
    world.lose_pods(new, 1)
    world.unready.add(new)
    lost = world.step()
    assert lost.header_routes == () and lost.status["intent"]["headerRoutes"] == [QA]  # intent kept, not served


def test_a_restart_keeps_the_routes_and_an_abort_removes_them_in_the_same_decision():
    world, _ = rolling(DARK_LAUNCH)
    world.run()
    world.restart()
    assert world.run().header_routes == (QA_ROUTE,)
    aborted = world.ask("abort")
    assert aborted.header_routes == () and aborted.canary_revision == ""
    assert "headerRoutes" not in aborted.status["intent"]


def test_a_promotion_removes_the_routes():
    world, new = rolling([{"setHeaderRoute": QA}, {"setWeight": 50}, {"pause": {}}])
    at_fifty = world.run()
    assert at_fifty.header_routes == (QA_ROUTE,) and at_fifty.route_weights.canary == 50
    promoted = world.ask("promote")
    assert promoted.stable_revision == new and promoted.header_routes == ()


def test_a_manual_pause_holds_the_route_step():
    world, new = rolling(DARK_LAUNCH)
    world.unready.add(new)
    world.run()
    world.ask("pause")
    world.unready.clear()
    held = world.run()
    assert held.header_routes == () and held.status["currentStepIndex"] == 0


def test_a_route_of_the_same_name_is_replaced_in_place_and_others_kept():
    cookie = {"name": "beta", "match": [{"cookie": {"name": "model", "value": "new"}}]}
    prefix = {"name": "qa", "match": [{"headerName": "x-model-qa", "headerValue": {"prefix": "team-"}}]}
    steps = [{"setHeaderRoute": QA}, {"setHeaderRoute": cookie}, {"setHeaderRoute": prefix}, {"pause": {}}]
    world, _ = rolling(steps)
    routes = world.run().header_routes
    assert [route.name for route in routes] == ["qa", "beta"]
    assert routes[0].matches == (HeaderMatch("x-model-qa", "team-", MatchKind.PREFIX),)
    assert routes[1].matches == (HeaderMatch("model", "new", cookie=True),)


def test_a_manual_automation_asks_a_person_before_the_route():
    world = World(make_spec(version="1", replicas=4, steps=DARK_LAUNCH, automation="manual"))
    world.run()
    world.spec = make_spec(version="2", replicas=4, steps=DARK_LAUNCH, automation="manual")
    asked = world.run()
    assert asked.header_routes == () and asked.status["phase"] == "Paused"
    assert world.ask("promote").header_routes == (QA_ROUTE,)


@pytest.mark.parametrize(
    ("match", "expression"),
    [
        (HeaderMatch("x-qa", "a.b"), r"^a\.b$"),
        (HeaderMatch("x-qa", "team-", MatchKind.PREFIX), r"^team\-.*$"),
        (HeaderMatch("x-qa", "^v[0-9]+$", MatchKind.REGEX), "^v[0-9]+$"),
        (HeaderMatch("model", "new", cookie=True), r"^(.*;\s*)?model=new(;.*)?$"),
    ],
)
def test_each_match_is_one_anchored_expression(match, expression):
    assert match.regex() == expression


def test_a_cookie_expression_matches_the_cookie_anywhere_in_the_header_and_nothing_else():
    expression = re.compile(HeaderMatch("model", "new", cookie=True).regex())
    for header in ("model=new", "a=1; model=new", "model=new; b=2", "a=1;model=new;b=2"):
        assert expression.fullmatch(header) and expression.search(header), header
    for header in ("model=newer", "xmodel=new", "model=old; a=new", ""):
        assert not expression.search(header), header


def test_a_step_without_match_removes_and_the_spec_shape_round_trips():
    removal = parse_step({"setHeaderRoute": {"name": "qa"}})
    assert removal == SetHeaderRoute("qa") and not removal.adds
    assert removal.apply((QA_ROUTE,)) == ()
    assert parse_step({"setHeaderRoute": QA}).describe() == "setHeaderRoute qa (header x-model-qa exact 'yes')"
