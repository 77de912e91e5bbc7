"""The decision journal: one entry per change a decision makes, none for a decision that changes nothing."""

from __future__ import annotations

import json
import logging

from modelrollout.controller import decisionlog
from modelrollout.core.analysis import AnalysisInput, Measurement, MetricSpec
from modelrollout.core.enums import Change
from modelrollout.core.rollout import journal
from modelrollout.logs import JsonFormatter
from tests.unit.world import META, World, make_spec, start_new_version

STEPS = [{"setWeight": 20}, {"pause": {"duration": "1m"}}, {"setWeight": 60}, {"pause": {}}]


class Journal:
    """Collects every decision's journal entries as the World decides."""

    def __init__(self) -> None:
        self.entries: list = []
        self.per_decision: list[tuple] = []

    def __call__(self, observation, decision, previous) -> None:
        entries = journal(observation, decision)
        self.per_decision.append(entries)
        self.entries += entries

    def take(self) -> list:
        taken, self.entries = self.entries, []
        return taken


def messages(entries, change: Change) -> list[str]:
    return [entry.message for entry in entries if entry.change is change]


def rolled_world(**spec) -> tuple[World, Journal, str]:
    log = Journal()
    world = World(make_spec(replicas=4, steps=STEPS, **spec), check=log)
    world.run()
    stable = world.spec.revision
    log.take()
    return world, log, stable


def test_a_whole_canary_is_told_step_by_step():
    world, log, stable = rolled_world()
    new = start_new_version(world, steps=STEPS)
    world.run()
    started = log.take()
    assert messages(started, Change.STARTED) == [f"rollout of revision {new} started (Canary)"]
    assert messages(started, Change.STEP_STARTED)[:2] == [
        "step 1/4 started: setWeight 20%",
        "step 2/4 started: pause 60s",
    ]
    assert messages(started, Change.STEP_COMPLETED) == ["step 1/4 completed: setWeight 20%"]
    assert "canary weight 0% → 20%" in messages(started, Change.WEIGHT)
    assert f"revision {new} scaled 0 → 1 pods" in messages(started, Change.SCALED)
    paused = [e for e in started if e.change is Change.PHASE and e.fields["phase"] == "Progressing"]
    assert paused and paused[-1].fields["reason"] == "RolloutInProgress"

    world.advance(60)
    world.run()
    gate = log.take()
    assert messages(gate, Change.STEP_STARTED) == [
        "step 3/4 started: setWeight 60%",
        "step 4/4 started: pause until promoted",
    ]
    assert "canary weight 20% → 60%" in messages(gate, Change.WEIGHT)
    (waiting,) = [e for e in gate if e.change is Change.PHASE]
    assert waiting.fields == {"phase": "Paused", "previous_phase": "Progressing", "reason": "CanaryPauseStep"}

    world.ask("promote")
    promoted = log.take()
    assert messages(promoted, Change.PROMOTED) == [f"revision {new} promoted: it is stable now (was {stable})"]
    assert messages(promoted, Change.WEIGHT) == [
        "canary weight 60% → 0% (promoted: the new stable revision serves it all)"
    ]
    world.advance(31)  # the old revision's scale-down delay
    world.run()
    assert f"revision {stable} scaled 4 → 0 pods" in messages(log.take(), Change.SCALED)


def test_a_decision_that_changes_nothing_says_nothing():
    world, log, _ = rolled_world()
    start_new_version(world, steps=STEPS)
    world.run()
    log.take()
    for _ in range(3):
        world.step()
    assert log.take() == []


def test_an_alarm_abort_is_told_with_its_reason_and_the_traffic_it_moved():
    world, log, stable = rolled_world()
    new = start_new_version(world, steps=STEPS)
    world.run()
    log.take()
    world.alerts = ("Errors",)
    world.run()
    aborted = log.take()
    (abort,) = [e for e in aborted if e.change is Change.ABORTED]
    assert abort.fields == {"reason": "AlertFiring", "aborted_revision": new}
    assert "alert Errors is firing" in abort.message
    assert "canary weight 20% → 0%" in messages(aborted, Change.WEIGHT)
    assert [e.fields["phase"] for e in aborted if e.change is Change.PHASE] == ["Degraded"]
    changes = [e.change for e in aborted]  # the cause first, then the traffic it moved, then the phase
    assert changes.index(Change.ABORTED) < changes.index(Change.WEIGHT) < changes.index(Change.PHASE)
    assert stable in aborted[-1].message


def test_a_measurement_is_told_with_its_value_condition_and_outcome():
    template = {"name": "error-rate", "clusterScope": False}
    steps = [{"setWeight": 20}, {"analysis": {"templates": [template]}}, {"pause": {}}]
    world, log, _ = rolled_world()
    start_new_version(world, steps=steps)
    world.run()
    metric = MetricSpec(name="error-rate", interval=1.0, success_condition="result < 0.05", query="q")
    (key,) = [run.key for run in world.decision.analysis_runs]
    world.analysis = {key: AnalysisInput((metric,), {"error-rate": Measurement(world.now, 0.01)})}
    world.run()
    (measured,) = [e for e in log.take() if e.change is Change.MEASURED]
    assert (
        measured.message
        == "analysis metric error-rate measured 0.01 against successCondition result < 0.05: Successful"
    )
    assert measured.fields == {
        "metric": "error-rate",
        "value": 0.01,
        "condition": "successCondition result < 0.05",
        "outcome": "Successful",
    }


def test_the_log_line_names_the_object_and_revision_and_json_carries_the_fields(caplog):
    world, log, _ = rolled_world()
    new = start_new_version(world, steps=STEPS)
    world.run()
    entries = log.take()
    with caplog.at_level(logging.INFO, logger=decisionlog.DECISIONS.name):
        decisionlog.write(META, new, entries)
    lines = [record for record in caplog.records if record.name == "modelrollout.decisions"]
    assert len(lines) == len(entries) and lines[0].levelno == logging.INFO
    assert lines[0].getMessage() == f"models/fraud revision {new}: rollout of revision {new} started (Canary)"
    weight = next(r for r in lines if "canary weight 0% → 20%" in r.getMessage())
    fields = json.loads(JsonFormatter().format(weight))
    assert {key: fields[key] for key in ("namespace", "name", "revision", "change", "percent", "previous_percent")} == {
        "namespace": "models",
        "name": "fraud",
        "revision": new,
        "change": "WeightChanged",
        "percent": 20,
        "previous_percent": 0,
    }
