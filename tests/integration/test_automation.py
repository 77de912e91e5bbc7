"""Degrees of automation on the real control plane: where each level waits for a person, and who decided.

manual waits at every gate, supervised before live traffic first reaches a shadowed model and before
the final promotion, full nowhere. Approvals go through the kubectl plugin, as a person's would.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import get_json, wait_for
from tests.integration.helpers import (
    NEXT_VERSION,
    apply,
    gateway_that_mirrors,
    healthy,
    plugin,
    replicas_by_revision,
    revision_of,
    sample,
    wait_status,
    with_version,
)

ROUTE = {"gatewayAPI": {"parentRefs": [{"name": "public"}]}}


@pytest.fixture(autouse=True)
def mirroring_gateway(control_plane, namespace) -> None:
    """The routes' Gateway `public`, of a class that declares mirroring (else a shadow rightly waits)."""
    gateway_that_mirrors(control_plane, namespace)


def md_with(automation: str, strategy: dict) -> dict:
    return sample(replicas=2, automation=automation, strategy=strategy, trafficRouting=ROUTE)


def route(control_plane, namespace: str) -> tuple[int, int, int]:
    """(stable weight, canary weight, mirror percent) as the HTTPRoute says."""
    rule = get_json(control_plane, "httproute", "fraud-scorer", "-n", namespace)["spec"]["rules"][0]
    weights = [ref["weight"] for ref in rule["backendRefs"]]
    mirrors = [f for f in rule.get("filters", []) if f["type"] == "RequestMirror"]
    return weights[0], weights[1], mirrors[0]["requestMirror"]["percent"] if mirrors else 0


def wait_gate(control_plane, namespace: str, gate: str) -> dict:
    return wait_status(
        control_plane,
        namespace,
        lambda s: any(p.get("gate") == gate for p in s.get("pauseReasons") or []),
        f"waiting for a person at gate {gate}",
    )["status"]


def approve(control_plane, namespace: str) -> None:
    result = plugin(control_plane, "promote", "fraud-scorer", "-n", namespace)
    assert result.returncode == 0, result.stderr


def roll_out(control_plane, namespace: str, body: dict) -> str:
    assert apply(control_plane, namespace, body).returncode == 0
    wait_for(lambda: healthy(control_plane, namespace), what="first Ready")
    assert apply(control_plane, namespace, with_version(body, NEXT_VERSION)).returncode == 0
    return revision_of(with_version(body, NEXT_VERSION))


def test_manual_waits_for_a_person_before_every_step_and_the_promotion(control_plane, operator, namespace):
    body = md_with("manual", {"canary": {"steps": [{"setWeight": 50}, {"setWeight": 100}]}})
    new = roll_out(control_plane, namespace, body)
    first = wait_gate(control_plane, namespace, "step-0")
    assert "automation manual" in first["message"] and route(control_plane, namespace) == (100, 0, 0)
    assert replicas_by_revision(control_plane, namespace).get(new, 0) == 0  # not even scaled up before approval
    shown = plugin(control_plane, "status", "fraud-scorer", "-n", namespace).stdout
    assert "Waiting:     gate step-0" in shown and "automation manual" in shown
    approve(control_plane, namespace)
    wait_gate(control_plane, namespace, "step-1")
    assert route(control_plane, namespace) == (50, 50, 0)
    approve(control_plane, namespace)
    wait_gate(control_plane, namespace, "promotion")
    assert route(control_plane, namespace) == (0, 100, 0)
    approve(control_plane, namespace)
    done = wait_status(control_plane, namespace, lambda s: s["stableRevision"] == new, "promoted")["status"]
    history = {entry["action"]: entry["actor"] for entry in done["history"]}
    person = history["promote"]
    assert person != "modelrollout" and history["Promoted"] == person


def test_supervised_waits_before_live_traffic_and_before_the_promotion(control_plane, operator, namespace):
    strategy = {"shadow": {"mirrorPercent": 50, "duration": "2s"}, "canary": {"steps": [{"setWeight": 50}]}}
    new = roll_out(control_plane, namespace, md_with("supervised", strategy))
    held = wait_gate(control_plane, namespace, "shadow")
    assert route(control_plane, namespace) == (100, 0, 50)  # mirrored, still no live traffic
    assert held["weights"] == {"stable": 100, "canary": 0, "mirror": 50}
    approve(control_plane, namespace)
    at_promotion = wait_gate(control_plane, namespace, "promotion")  # the step itself went on automatically
    assert route(control_plane, namespace) == (50, 50, 0)
    steps = [e for e in at_promotion["history"] if e["action"] == "StepCompleted"]
    assert steps and all(e["actor"] == "modelrollout" for e in steps)
    approve(control_plane, namespace)
    done = wait_status(control_plane, namespace, lambda s: s["stableRevision"] == new, "promoted")["status"]
    approvals = [e for e in done["history"] if e["action"] == "promote"]
    assert [e["message"].rsplit(" ", 2)[-2] for e in approvals] == ["shadow", "promotion"]


def test_full_goes_through_shadow_and_canary_without_a_person(control_plane, operator, namespace):
    strategy = {"shadow": {"mirrorPercent": 100, "duration": "2s"}, "canary": {"steps": [{"setWeight": 50}]}}
    new = roll_out(control_plane, namespace, md_with("full", strategy))
    done = wait_status(
        control_plane, namespace, lambda s: s["stableRevision"] == new and s["phase"] == "Healthy", "promoted"
    )["status"]
    assert route(control_plane, namespace) == (100, 0, 0)
    actions = [(e["action"], e["actor"]) for e in done["history"]]
    assert ("ShadowCompleted", "modelrollout") in actions and ("Promoted", "modelrollout") in actions
    assert not [a for a, _ in actions if a == "promote"]
