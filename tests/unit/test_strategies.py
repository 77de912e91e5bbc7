"""Shadow, blue/green and the degrees of automation, driven through the pure core with explicit time."""

from __future__ import annotations

from modelrollout.core.analysis import AnalysisInput, Measurement, MetricSpec
from modelrollout.core.conditions import format_time
from tests.unit.world import T0, World, make_spec, start_new_version

PSI = MetricSpec("prediction-psi", interval=60, count=2, consecutive_error_limit=0, success_condition="result < 0.1")
ERRORS = MetricSpec("error-rate", interval=60, count=0, success_condition="result < 0.01")  # open-ended
CANARY = {"steps": [{"setWeight": 25}, {"pause": {"duration": "1m"}}, {"setWeight": 50}]}
SHADOW_CHECKS = {"templates": [{"name": "prediction-distribution-shift"}]}


def psi(value: float | None, at=T0) -> AnalysisInput:
    return AnalysisInput((PSI,), {"prediction-psi": Measurement(at, value)})


def shadow_then_canary(**shadow) -> dict:
    return {"shadow": {"mirrorPercent": 50, "duration": "10m", **shadow}, "canary": CANARY}


def live_weights(world: World) -> tuple[int, int]:
    assert world.decision is not None
    return world.decision.weights.canary, world.decision.route_weights.canary


# --- shadow ----------------------------------------------------------------------------------


def test_shadow_mirrors_until_its_duration_then_the_canary_starts(stable_world):
    world = stable_world
    new = start_new_version(world, strategy=shadow_then_canary())
    first = world.step(settle=False)
    assert first.status["stage"] == "Shadow" and first.weights.mirror == 0  # no mirror before pods are ready
    assert first.replicas_of(new) == 2  # capacity for 50% of the traffic
    mirroring = world.run()
    assert mirroring.weights.mirror == 50 and mirroring.route_weights.mirror == 50
    assert live_weights(world) == (0, 0)
    assert mirroring.tracks[new] == "shadow"
    assert "shadow (50% mirrored): 10m00s left" in mirroring.status["message"]  # no time has passed yet
    world.advance(600)
    canary = world.run()
    assert canary.status["stage"] == "Canary" and canary.weights.mirror == 0
    assert canary.weights.canary == 25 and canary.tracks[new] == "canary"
    actions = [entry["action"] for entry in canary.status["history"]]
    assert actions.index("ShadowStarted") < actions.index("ShadowCompleted") < actions.index("StepCompleted")
    world.advance(60)
    assert world.run().status["stableRevision"] == new


def test_a_shadow_whose_predictions_differ_is_stopped_before_any_live_traffic(stable_world):
    world = stable_world
    new = start_new_version(world, strategy=shadow_then_canary(analysis=SHADOW_CHECKS))
    running = world.run()
    (run,) = running.analysis_runs
    assert run.key == f"{new}-shadow"
    world.analysis = {run.key: psi(0.42)}
    stopped = world.step()
    assert stopped.status["phase"] == "Degraded" and stopped.status["abort"]["reason"] == "AnalysisFailed"
    assert "prediction-psi: 0.42 did not meet successCondition result < 0.1" in stopped.status["abort"]["message"]
    assert stopped.weights.mirror == 0 and live_weights(world) == (0, 0)
    assert any("never served live traffic" in e.message for e in stopped.events if e.reason == "RolloutAborted")
    assert stopped.status["stableRevision"] != new


def test_the_shadow_waits_for_its_analysis_to_finish_after_its_duration(stable_world):
    world = stable_world
    new = start_new_version(world, strategy=shadow_then_canary(analysis=SHADOW_CHECKS))
    world.run()
    world.advance(600)
    world.analysis = {f"{new}-shadow": psi(0.02, world.now)}
    one = world.run()
    assert one.status["stage"] == "Shadow" and "waiting for the analysis to finish" in one.status["message"]
    world.advance(60)
    world.analysis = {f"{new}-shadow": psi(0.02, world.now)}
    assert world.run().status["stage"] == "Canary"


def test_an_open_ended_shadow_analysis_runs_for_the_duration_only(stable_world):
    world = stable_world
    new = start_new_version(world, strategy=shadow_then_canary(analysis=SHADOW_CHECKS))
    world.run()
    world.analysis = {f"{new}-shadow": AnalysisInput((ERRORS,), {"error-rate": Measurement(T0, 0.001)})}
    world.advance(600)
    assert world.run().status["stage"] == "Canary"


def test_a_shadow_without_duration_waits_for_a_person(stable_world):
    world = stable_world
    new = start_new_version(world, strategy={"shadow": {"mirrorPercent": 100}, "canary": CANARY})
    world.advance(3600)
    waiting = world.run()
    assert waiting.status["phase"] == "Paused" and waiting.weights.mirror == 100
    (pause,) = waiting.status["pauseReasons"]
    assert pause["reason"] == "AwaitingApproval" and pause["gate"] == "shadow"
    promoted = world.ask("promote", actor="carol")
    assert promoted.status["stage"] == "Canary" and promoted.weights.mirror == 0
    assert promoted.status["approvals"] == [{"gate": "shadow", "actor": "carol", "time": format_time(world.now)}]
    assert promoted.status["canaryRevision"] == new


def test_shadow_alone_waits_for_a_person_then_switches_all_traffic_at_once(stable_world):
    world = stable_world
    new = start_new_version(world, strategy={"shadow": {"mirrorPercent": 25, "duration": "5m"}})
    world.run()
    world.advance(300)
    waiting = world.run()
    assert waiting.status["pauseReasons"][0]["gate"] == "promotion" and "shadow alone" in waiting.status["message"]
    assert waiting.weights.mirror == 0 and waiting.replicas_of(new) == 0  # no pods kept without traffic
    promoted = world.ask("promote", actor="dave")
    assert promoted.status["stableRevision"] == new
    promotion = next(e for e in promoted.status["history"] if e["action"] == "Promoted")
    assert promotion["actor"] == "dave"


def test_an_abort_during_the_shadow_removes_the_mirror(stable_world):
    world = stable_world
    start_new_version(world, strategy=shadow_then_canary())
    assert world.run().weights.mirror == 50
    aborted = world.ask("abort")
    assert aborted.weights.mirror == 0 and aborted.route_weights.mirror == 0
    assert aborted.status["abort"]["reason"] == "Aborted" and aborted.status["stage"] == ""


def test_without_a_mirroring_router_the_shadow_is_skipped_with_a_warning():
    world = World(make_spec(router=False))
    world.run()
    world.spec = make_spec(version="2", router=False, strategy=shadow_then_canary())
    decision = world.run()
    assert "ShadowUnsupported" in world.events and decision.status["stage"] == "Canary"


UNDECLARED = ("GatewayClass traefik (of Gateway gateways/public) does not declare HTTPRouteRequestMirror",)


def test_a_shadow_never_mirrors_through_a_data_plane_that_does_not_declare_it(stable_world):
    world = stable_world
    world.mirroring_undeclared = UNDECLARED
    new = start_new_version(world, strategy=shadow_then_canary())
    held = world.run()
    assert held.weights.mirror == 0 and held.route_weights.mirror == 0 and live_weights(world) == (0, 0)
    assert held.status["phase"] == "Progressing" and held.status["stage"] == "Shadow"
    progressing = next(c for c in held.status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "MirrorUnsupported" and held.status["pauseReasons"] == []
    assert "GatewayClass traefik" in held.status["message"] and "assumeMirroring" in held.status["message"]
    assert held.replicas_of(new) == 2  # the shadow's pods warm up meanwhile
    assert held.requeue_after == 30.0  # the data plane is looked at again
    world.advance(3600)  # the shadow's duration does not run while nothing is mirrored
    assert world.run().weights.mirror == 0
    assert world.events.count("MirrorUnsupported") == 1  # said once, not on every look


def test_the_shadow_starts_once_the_data_plane_declares_mirroring(stable_world):
    world = stable_world
    world.mirroring_undeclared = UNDECLARED
    start_new_version(world, strategy=shadow_then_canary())
    world.run()
    world.mirroring_undeclared = ()
    mirroring = world.run()
    assert mirroring.weights.mirror == 50 and mirroring.status["phase"] == "Progressing"
    assert "MirrorDeclared" in world.events and mirroring.status["mirrorRefusedAt"] is None
    assert "10m00s left" in mirroring.status["message"]  # the duration counts from the mirror's start


def test_a_data_plane_that_stops_declaring_mirroring_loses_the_mirror_at_once(stable_world):
    world = stable_world
    start_new_version(world, strategy=shadow_then_canary())
    assert world.run().weights.mirror == 50
    world.mirroring_undeclared = UNDECLARED
    held = world.step()
    assert held.weights.mirror == 0 and held.route_weights.mirror == 0
    assert held.status["mirrorRefusedAt"] and "MirrorUnsupported" in world.events


def test_a_persons_pause_does_not_keep_a_mirror_the_data_plane_no_longer_declares(stable_world):
    world = stable_world
    start_new_version(world, strategy=shadow_then_canary())
    assert world.run().weights.mirror == 50
    world.ask("pause")
    world.mirroring_undeclared = UNDECLARED
    held = world.run()
    assert held.route_weights.mirror == 0 and held.status["phase"] == "Paused"
    assert [pause["reason"] for pause in held.status["pauseReasons"]] == ["Manual"]
    assert world.events.count("MirrorUnsupported") == 1


def test_assume_mirroring_writes_the_mirror_a_data_plane_does_not_declare(stable_world):
    world = stable_world
    world.mirroring_undeclared = UNDECLARED
    routing = {"gatewayAPI": {"parentRefs": [{"name": "gw"}], "assumeMirroring": True}}
    start_new_version(world, strategy=shadow_then_canary(), trafficRouting=routing)
    assert world.run().weights.mirror == 50 and "MirrorUnsupported" not in world.events


# --- blue/green --------------------------------------------------------------------------------


def blue_green(**fields) -> dict:
    return {"blueGreen": {"previewReplicas": 1, "autoPromotionSeconds": 120, "scaleDownDelaySeconds": 30, **fields}}


def test_blue_green_previews_then_switches_the_active_revision_in_one_decision(stable_world):
    world = stable_world
    old = world.status["stableRevision"]
    new = start_new_version(world, strategy=blue_green())
    preview = world.run()
    assert preview.status["stage"] == "Preview" and preview.replicas_of(new) == 1 and preview.replicas_of(old) == 4
    assert preview.active_revision == old and preview.preview_revision == new
    assert preview.tracks == {old: "stable", new: "preview"}
    assert "switching automatically in 2m" in preview.status["message"]
    world.advance(120)
    promoting = world.step(settle=False)
    assert promoting.status["stage"] == "Promoting" and promoting.replicas_of(new) == 4
    assert promoting.active_revision == old  # never switch to a preview that is not at full size
    switched = world.run()
    assert switched.active_revision == new and switched.replicas_of(old) == 4
    assert switched.route_weights.stable == 100  # routes stay; the Services switch
    assert world.decision.status["stableRevision"] == new
    world.advance(30)
    assert world.run().replicas_of(old) == 0


def test_blue_green_without_auto_promotion_waits_for_a_person_even_at_full_automation(stable_world):
    world = stable_world
    new = start_new_version(world, strategy=blue_green(autoPromotionSeconds=None))
    world.advance(86400)
    waiting = world.run()
    assert waiting.status["pauseReasons"][0]["gate"] == "promotion" and waiting.active_revision != new
    assert "no autoPromotionSeconds" in waiting.status["message"]
    assert world.ask("promote").active_revision == new


def test_a_failing_pre_promotion_analysis_never_switches(stable_world):
    world = stable_world
    old = world.status["stableRevision"]
    new = start_new_version(world, strategy=blue_green(prePromotionAnalysis=SHADOW_CHECKS))
    world.run()
    world.analysis = {f"{new}-pre-promotion": psi(0.9)}
    world.advance(120)
    aborted = world.run()
    assert aborted.status["abort"]["reason"] == "AnalysisFailed" and aborted.active_revision == old
    assert "pre-promotion analysis" in aborted.status["abort"]["message"]


def test_a_failing_post_promotion_analysis_switches_back_at_once(stable_world):
    world = stable_world
    old = world.status["stableRevision"]
    new = start_new_version(world, strategy=blue_green(postPromotionAnalysis=SHADOW_CHECKS))
    world.run()
    world.advance(120)
    switched = world.run()
    assert switched.status["stage"] == "PostPromotion" and switched.active_revision == new
    assert switched.weights.canary == 100 and switched.status["stableRevision"] == old
    assert switched.tracks == {new: "stable", old: "old"}
    world.analysis = {f"{new}-post-promotion": psi(0.5)}
    back = world.step()
    assert back.active_revision == old and back.replicas_of(old) == 4
    assert back.status["abort"]["reason"] == "AnalysisFailed" and back.weights.canary == 0
    assert any("all traffic is back on" in e.message for e in back.events if e.reason == "RolloutAborted")


def test_a_passing_post_promotion_analysis_completes_the_promotion(stable_world):
    world = stable_world
    new = start_new_version(world, strategy=blue_green(postPromotionAnalysis=SHADOW_CHECKS))
    world.run()
    world.advance(120)
    world.run()
    world.analysis = {f"{new}-post-promotion": psi(0.01, world.now)}
    first = world.run()
    assert first.status["stage"] == "PostPromotion"  # count 2: one measurement is not enough
    world.advance(60)
    assert world.run().status["stage"] == "PostPromotion"  # the same measurement again does not count twice
    world.analysis = {f"{new}-post-promotion": psi(0.01, world.now)}
    assert world.run().status["stableRevision"] == new


def test_blue_green_without_a_router_switches_by_the_active_service():
    world = World(make_spec(router=False, strategy=blue_green(previewReplicas=None)))
    old = world.run().status["stableRevision"]
    world.spec = make_spec(version="2", router=False, strategy=blue_green(previewReplicas=None))
    preview = world.run()
    assert preview.replicas_of(world.spec.revision) == 4 and preview.replicas_of(old) == 4  # full-size preview
    assert preview.weights.canary == 0
    world.advance(120)
    done = world.run()
    assert done.active_revision == world.spec.revision and done.replicas_of(old) == 4  # kept for the delay
    world.advance(30)
    assert world.run().replicas_of(old) == 0


# --- automation --------------------------------------------------------------------------------


def approve_all(world: World, actor: str = "erin") -> list[str]:
    """Approve each gate the rollout stops at, in order, until it is done; returns the gates."""
    gates = []
    world.run()
    for _ in range(40):
        pauses = world.status.get("pauseReasons") or []
        if not world.status.get("canaryRevision"):
            return gates
        if pauses and pauses[0]["reason"] == "AwaitingApproval":
            gates.append(pauses[0]["gate"])
            world.ask("promote", actor=actor)
        else:
            world.advance(60)
            world.run()
    raise AssertionError(f"rollout did not finish: {world.status['message']}")


def test_manual_automation_waits_for_a_person_at_every_step(stable_world):
    world = stable_world
    new = start_new_version(world, steps=[{"setWeight": 25}, {"pause": {"duration": "1m"}}], automation="manual")
    waiting = world.run()
    assert waiting.status["pauseReasons"][0]["gate"] == "step-0" and waiting.replicas_of(new) == 0
    assert "automation manual" in waiting.status["message"]
    assert approve_all(world) == ["step-0", "step-1", "promotion"]
    assert world.status["stableRevision"] == new


def test_supervised_automation_waits_before_live_traffic_and_before_the_promotion(stable_world):
    world = stable_world
    new = start_new_version(world, strategy=shadow_then_canary(), automation="supervised")
    world.run()
    world.advance(600)
    held = world.run()
    assert held.status["pauseReasons"][0]["gate"] == "shadow" and live_weights(world) == (0, 0)
    assert approve_all(world) == ["shadow", "promotion"]
    history = world.status["history"]
    assert next(e for e in history if e["action"] == "Promoted")["actor"] == "erin"
    assert next(e for e in history if e["action"] == "StepCompleted")["actor"] == "modelrollout"
    assert world.status["stableRevision"] == new


def test_supervised_automation_holds_the_canary_size_at_the_promotion_gate():
    world = World(make_spec(router=False, steps=[{"setWeight": 25}], automation="supervised"))
    world.run()
    world.spec = make_spec(version="2", router=False, steps=[{"setWeight": 25}], automation="supervised")
    held = world.run()
    assert held.status["pauseReasons"][0]["gate"] == "promotion"
    assert held.replicas_of(world.spec.revision) == 1 and held.weights.canary == 25  # not 100% before approval


def test_full_automation_never_waits_for_a_person(stable_world):
    world = stable_world
    new = start_new_version(world, strategy=shadow_then_canary())
    assert approve_all(world) == []
    assert world.status["stableRevision"] == new
    assert next(e for e in world.status["history"] if e["action"] == "Promoted")["actor"] == "modelrollout"


def test_failing_checks_roll_back_at_every_automation_level(stable_world):
    for level in ("manual", "supervised", "full"):
        world = World(make_spec())
        world.run()
        new = start_new_version(world, strategy=shadow_then_canary(analysis=SHADOW_CHECKS), automation=level)
        world.run()
        world.analysis = {f"{new}-shadow": psi(0.3)}
        assert world.run().status["abort"]["reason"] == "AnalysisFailed", level


def test_promote_full_passes_every_gate_and_stage(stable_world):
    world = stable_world
    new = start_new_version(world, strategy=shadow_then_canary(), automation="manual")
    world.run()
    done = world.ask("promote-full")
    assert done.status["stableRevision"] == new


def test_removing_the_shadow_mid_shadow_goes_on_to_the_canary(stable_world):
    world = stable_world
    new = start_new_version(world, strategy=shadow_then_canary())
    assert world.run().weights.mirror == 50
    world.spec = make_spec(version="2", strategy={"canary": CANARY})  # same revision: strategy is not in it
    assert world.spec.revision == new
    decision = world.run()
    assert decision.status["stage"] == "Canary" and decision.weights.mirror == 0
    assert any("no longer asks for it" in e["message"] for e in decision.status["history"])
