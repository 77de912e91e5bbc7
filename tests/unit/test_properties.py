"""Property-based tests: random specs and random event sequences, every safety invariant after every decision.

Examples per property: MODELROLLOUT_HYPOTHESIS_EXAMPLES (default 1000, about 20 s; CI runs them derandomized,
without a saved database). Run with many more before changing the core, e.g.
`MODELROLLOUT_HYPOTHESIS_EXAMPLES=20000 .venv/bin/pytest tests/unit/test_properties.py`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelrollout.core import analysis as runs
from modelrollout.core.analysis import AnalysisInput, Measurement, MetricSpec
from modelrollout.core.enums import RequestAction, Router
from modelrollout.core.hooks import HookAnswer, HookFailure, HookPoint
from modelrollout.core.observed import Request
from modelrollout.core.routers import TRAITS
from tests.unit import invariants
from tests.unit.world import World, make_spec

EXAMPLES = int(os.environ.get("MODELROLLOUT_HYPOTHESIS_EXAMPLES", "1000"))
IN_CI = bool(os.environ.get("CI"))
PROFILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=IN_CI,
    database=None if IN_CI else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ROUTERS = tuple(Router)
MIRRORING = tuple(router for router in ROUTERS if TRAITS[router].mirrors)
CHECKS = {"templates": [{"name": "error-rate"}]}
ACTIONS = tuple(action.value for action in RequestAction)  # every manual action, retry-analysis included


SCALES = ({"replicas": 0}, {"replicas": 3}, {"replicas": 20}, {"weight": 60}, {"matchTrafficWeight": True})
HEADER_ROUTES = (
    {"name": "qa", "match": [{"headerName": "x-qa", "headerValue": {"exact": "yes"}}]},
    {"name": "qa", "match": [{"headerName": "x-qa", "headerValue": {"prefix": "team-"}}]},
    {"name": "beta", "match": [{"cookie": {"name": "model", "value": "new"}}]},
    {"name": "qa"},  # removes the route
    {"name": "beta"},
)


@st.composite
def steps(draw, routed: bool = True) -> list[dict]:
    """Canary steps; `routed` adds setCanaryScale and setHeaderRoute steps (the CRD refuses them without a router)."""
    count = draw(st.integers(1, 8))
    weight, result = 0, []
    kinds = ("setWeight", "pause", "timed-pause", "analysis", "experiment")
    kinds += ("setCanaryScale", "setHeaderRoute") if routed else ()
    for _ in range(count):
        kind = draw(st.sampled_from(kinds))
        if kind == "setCanaryScale":
            result.append({"setCanaryScale": draw(st.sampled_from(SCALES))})
            continue
        if kind == "setHeaderRoute":
            result.append({"setHeaderRoute": draw(st.sampled_from(HEADER_ROUTES))})
            continue
        if kind == "setWeight":  # the CRD refuses decreasing weights
            weight = draw(st.integers(weight, 100))
            result.append({"setWeight": weight})
        elif kind == "experiment":
            weight = draw(st.integers(max(weight, 1), 100))
            duration = draw(st.sampled_from(("30s", "10m")))
            result.append({"experiment": {"weight": weight, "duration": duration, "analysis": CHECKS}})
        elif kind == "pause":
            result.append({"pause": {}})
        elif kind == "timed-pause":
            result.append({"pause": {"duration": draw(st.sampled_from(("30s", "1m", "10m")))}})
        else:
            result.append({"analysis": CHECKS})
    return result


TARGETS = (
    {"webhook": {"url": "http://hooks.test/"}},
    {"job": {"spec": {"template": {"spec": {"containers": [{"name": "check", "command": ["true"]}]}}}}},
)


@st.composite
def hooks(draw) -> list[dict]:
    return [
        {
            "name": f"hook-{index}",
            "at": draw(st.lists(st.sampled_from(tuple(HookPoint)), min_size=1, max_size=4, unique=True)),
            **draw(st.sampled_from(TARGETS)),
            "onFailure": draw(st.sampled_from(tuple(HookFailure))),
            "retries": draw(st.integers(0, 1)),
            "retryIntervalSeconds": 30,
        }
        for index in range(draw(st.integers(1, 2)))
    ]


@st.composite
def specs(draw) -> dict:
    router = draw(st.sampled_from(ROUTERS))
    replicas = draw(st.integers(1, 12))
    shape = draw(st.sampled_from(("canary", "blueGreen", "shadow+canary", "shadow+blueGreen", "shadow")))
    if "shadow" in shape and router not in MIRRORING:
        shape = shape.removeprefix("shadow+") if "+" in shape else "canary"
    strategy: dict = {}
    if "shadow" in shape:
        strategy["shadow"] = {"mirrorPercent": draw(st.integers(1, 100))}
        if draw(st.booleans()):
            strategy["shadow"]["duration"] = "1m"
        if draw(st.booleans()):
            strategy["shadow"]["analysis"] = CHECKS
    if shape.endswith("canary"):
        strategy["canary"] = {"steps": draw(steps(routed=router != Router.NONE))}
        if router in (Router.TRAEFIK, Router.NGINX) and draw(st.booleans()):
            strategy["canary"]["sessionAffinity"] = {"cookieName": "model-cohort"}
        if router != Router.NONE and draw(st.booleans()):
            strategy["canary"]["dynamicStableScale"] = True
    if shape.endswith("blueGreen"):
        blue_green: dict = {}
        if draw(st.booleans()):
            blue_green["previewReplicas"] = draw(st.integers(1, replicas))
        if draw(st.booleans()):
            blue_green["autoPromotionSeconds"] = 60
        for field in ("prePromotionAnalysis", "postPromotionAnalysis"):
            if draw(st.booleans()):
                blue_green[field] = CHECKS
        strategy["blueGreen"] = blue_green
    extra: dict = {"automation": draw(st.sampled_from(("manual", "supervised", "full")))}
    if draw(st.booleans()):
        extra["analysis"] = {**CHECKS, "startingStep": draw(st.integers(0, 3))}
    if draw(st.booleans()):
        extra["rollbackOn"] = {"alerts": [{"alertname": "ModelErrorRateHigh"}]}
    if draw(st.booleans()):
        extra["hooks"] = draw(hooks())
    if router == Router.GATEWAY_API and draw(st.booleans()):
        extra["trafficRouting"] = {"gatewayAPI": {"parentRefs": [{"name": "gw"}], "assumeMirroring": True}}
    return {"replicas": replicas, "router": router, "strategy": strategy, **extra}


OUTCOMES = ("pass", "fail", "no-data", "error", "invalid")
DRY_RUN_OUTCOMES = (None, "pass", "fail", "no-data", "error")  # a dry-run metric beside it, or none
VALUES = {"pass": 0.001, "fail": 0.5, "no-data": None, "error": None}

HOOK_ANSWERS = ("2xx", "5xx", "no answer", "job running")

events = st.one_of(
    # Fractions, and times just short of the timed steps' durations (30s, 1m, 10m) once they began mid-second.
    st.tuples(st.just("advance"), st.sampled_from((0.5, 1, 29.7, 30, 59.6, 61, 301, 599.6, 601, 3600))),
    st.tuples(st.just("readiness"), st.sampled_from((None, 0, 1, 2))),
    st.tuples(st.just("never-ready"), st.booleans()),
    st.tuples(st.just("lose"), st.tuples(st.sampled_from(("canary", "stable")), st.integers(1, 12))),
    st.tuples(st.just("request"), st.sampled_from(ACTIONS)),
    st.tuples(st.just("alert"), st.booleans()),
    st.tuples(st.just("mirroring-declared"), st.booleans()),
    st.tuples(st.just("analysis"), st.tuples(st.sampled_from(OUTCOMES), st.sampled_from(DRY_RUN_OUTCOMES))),
    st.tuples(st.just("hooks-answer"), st.sampled_from(HOOK_ANSWERS)),
    st.tuples(st.just("new-version"), st.none()),
    st.tuples(st.just("revert"), st.none()),
    st.tuples(st.just("restart"), st.none()),
    st.tuples(st.just("hurry"), st.booleans()),
)


def measured(outcome: str, world: World) -> Measurement:
    return Measurement(world.now, VALUES[outcome], "connection refused" if outcome == "error" else "")


def analysis_input(outcomes: tuple[str, str | None], count: int, world: World) -> AnalysisInput:
    """The error-rate metric's outcome, and a dry-run PSI metric's (its outcome must never matter)."""
    outcome, dry_outcome = outcomes
    if outcome == "invalid":
        return AnalysisInput(error="ModelAnalysisTemplate error-rate not found")
    metric = MetricSpec(
        "error-rate", interval=60, count=count, consecutive_error_limit=1, success_condition="result < 0.01"
    )
    if dry_outcome is None:
        return AnalysisInput((metric,), {"error-rate": measured(outcome, world)})
    dry = MetricSpec(
        "psi", interval=60, count=count, consecutive_error_limit=1, success_condition="result < 0.01", dry_run=True
    )
    return AnalysisInput((metric, dry), {"error-rate": measured(outcome, world), "psi": measured(dry_outcome, world)})


def apply_event(world: World, body: dict, event: tuple, versions: dict[str, str]) -> None:
    """Apply one event, then decide until nothing changes; `versions` maps each revision to its model version."""
    kind, value = event
    canary = world.status.get("canaryRevision") or world.spec.revision
    stable = world.status.get("stableRevision", "")
    match kind:
        case "advance":
            world.advance(value)
        case "readiness":
            world.ready_per_step = value
        case "never-ready":
            (world.unready.add if value else world.unready.discard)(canary)
        case "lose":
            track, count = value
            world.lose_pods(canary if track == "canary" else stable, count)
        case "request":
            world.asked += 1
            world.request = Request(action=value, id=f"{value}-{world.asked}", actor="prop")
        case "alert":
            world.alerts = ("ModelErrorRateHigh",) if value and "rollbackOn" in body else ()
        case "mirroring-declared":
            world.mirroring_undeclared = () if value else ("GatewayClass gc does not declare HTTPRouteRequestMirror",)
        case "analysis":
            asked = world.decision.analysis_runs if world.decision else ()
            world.analysis = {run.key: analysis_input(value, getattr(run, "default_count", 1), world) for run in asked}
        case "hooks-answer":
            answer = {
                "2xx": HookAnswer(True, 0.01, 200),
                "5xx": HookAnswer(False, 0.01, 503, "overloaded"),
                "no answer": HookAnswer(False, 10.0, None, "did not answer within 10s"),
                "job running": HookAnswer(False, 0.0, None, "Job hook-0-1 is running", pending=True),
            }[value]
            world.hook_server = lambda call: answer
        case "new-version":
            version = str(len(versions) + 1)
            world.spec = make_spec(version=version, **body)
            versions[world.spec.revision] = version
        case "revert":  # the spec goes back to the stable revision's model version
            if stable in versions:
                world.spec = make_spec(version=versions[stable], **body)
        case "restart":
            world.restart()
        case "hurry":  # urgent work for other ModelDeployments waits, or no longer
            world.hurried = value
    world.run()


@PROFILE
@given(body=specs(), script=st.lists(events, min_size=1, max_size=25), start=st.sampled_from((0.0, 0.4, 0.9)))
def test_every_decision_keeps_the_safety_invariants(body, script, start):
    world = World(make_spec(version="1", **body), now=T0 + timedelta(seconds=start))  # a rollout begun mid-second
    world.check = invariants.every(
        invariants.Checker(), invariants.HookLedger(world.hook_calls), invariants.TimedSteps()
    )
    world.check_written = invariants.reached_services_select_the_decision
    world.run()
    world.spec = make_spec(version="2", **body)
    versions = {make_spec(version="1", **body).revision: "1", world.spec.revision: "2"}
    world.ready_per_step = 1  # partial readiness is the norm
    world.run()
    for event in script:
        apply_event(world, body, event, versions)


# --- the reproduction, for every router and several sizes ------------------------------


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("replicas", [3, 5, 9])
def test_a_paused_canary_holds_its_share_and_the_stable_keeps_serving(router, replicas):
    """Deciding again and again at a `pause: {}` after setWeight 50, no time passing, moves nothing."""
    steps = [{"setWeight": 50}, {"pause": {}}]
    world = World(make_spec(version="1", replicas=replicas, router=router, steps=steps))
    stable = world.run().stable_revision
    world.spec = make_spec(version="2", replicas=replicas, router=router, steps=steps)
    new = world.spec.revision
    world.ready_per_step = 1
    world.run()
    canary_pods = -(-replicas * 50 // 100)  # ⌈R·50/100⌉, the documented rounding
    for _ in range(10):
        decision = world.step()
        status = decision.status
        seen = (status["phase"], status["currentStepIndex"], decision.stable_revision, world.replicas())
        assert seen[:3] == ("Paused", 1, stable), seen
        assert decision.replicas_of(new) == canary_pods, seen
        if router == "none":
            assert decision.replicas_of(stable) == max(1, replicas - canary_pods), seen
        else:
            assert decision.replicas_of(stable) == replicas, seen
            assert decision.route_weights.canary == 50, (decision.route_weights, seen)


@PROFILE
@given(
    outcomes=st.lists(
        st.tuples(st.sampled_from(tuple(VALUES)), st.sampled_from(tuple(VALUES))), min_size=1, max_size=12
    ),
    count=st.integers(0, 4),
    limits=st.tuples(st.integers(0, 2), st.integers(0, 2)),
)
def test_a_dry_run_metric_never_decides_an_analysis_run(outcomes, count, limits):
    """Whatever a dry-run metric measures, the run ends as the run of the deciding metric alone would,
    once the dry-run metric is done (a run waits for all its metrics)."""
    failure_limit, inconclusive_limit = limits
    deciding = MetricSpec(
        "error-rate",
        interval=60,
        count=count,
        failure_limit=failure_limit,
        inconclusive_limit=inconclusive_limit,
        success_condition="result < 0.01",
    )
    dry = MetricSpec("psi", interval=60, count=count, success_condition="result < 0.01", dry_run=True)
    alone = together = None
    for index, (outcome, dry_outcome) in enumerate(outcomes):
        now = T0 + timedelta(seconds=60 * index)
        world_now = Measurement(now, VALUES[outcome], "refused" if outcome == "error" else "")
        dry_now = Measurement(now, VALUES[dry_outcome], "refused" if dry_outcome == "error" else "")
        alone = runs.advance(alone, "k", "rev", (deciding,), {"error-rate": world_now}, now)
        together = runs.advance(together, "k", "rev", (deciding, dry), {"error-rate": world_now, "psi": dry_now}, now)
        dry_done = together["metrics"][1]["phase"] != runs.RUNNING
        expected = runs.RUNNING if alone["phase"] == runs.SUCCESSFUL and not dry_done else alone["phase"]
        assert together["phase"] == expected
        assert together["metrics"][0] == alone["metrics"][0]
