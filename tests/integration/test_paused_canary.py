"""A canary without a traffic router holds its weight at a `pause: {}` step until a person promotes it.

Without `spec.trafficRouting` the replica ratio splits traffic: at setWeight 50 of 3 replicas the canary
serves ⌈3·50/100⌉ = 2 pods and the stable revision keeps the other one. While the rollout is Paused the
operator keeps reconciling (the test touches an annotation every second, as GitOps tools do, so each
poll is checked after fresh reconciles), and nothing may move: not the Deployments' sizes, not the
reported weights, not the step, not the stable revision.
"""

from __future__ import annotations

import json
import math
import time

from tests.integration.conftest import wait_for
from tests.integration.helpers import (
    NEXT_VERSION,
    apply,
    healthy,
    md,
    plugin,
    replicas_by_revision,
    revision_of,
    sample,
    wait_status,
    with_version,
)

REPLICAS = 3
WEIGHT = 50
CANARY_PODS = math.ceil(REPLICAS * WEIGHT / 100)  # 2
STABLE_PODS = REPLICAS - CANARY_PODS  # 1: the stable never goes to 0 before the promotion
MAX_CANARY_WEIGHT = 67  # 2 of 3 pods, rounded
OBSERVE_SECONDS = 15.0


def poke(control_plane, namespace: str, count: int) -> None:
    """A metadata-only change (no new generation): the operator gets an event and reconciles."""
    control_plane.kubectl(
        "annotate", "--overwrite", "modeldeployment/fraud-scorer", "-n", namespace, f"test.modelrollout.io/poke={count}"
    )


def test_a_paused_canary_without_a_router_holds_its_pods_and_weight_until_promoted(control_plane, operator, namespace):
    steps = [{"setWeight": WEIGHT}, {"pause": {}}]
    body = sample(replicas=REPLICAS, strategy={"canary": {"steps": steps}})
    assert "trafficRouting" not in body["spec"], f"the sample routes traffic: {body['spec']['trafficRouting']}"
    newer = with_version(body, NEXT_VERSION)
    stable, new = revision_of(body), revision_of(newer)

    applied = apply(control_plane, namespace, body)
    assert applied.returncode == 0, applied.stderr
    first = wait_for(lambda: healthy(control_plane, namespace), what="first Ready")["status"]
    assert first["stableRevision"] == stable, f"stable revision {first['stableRevision']}, expected {stable}"
    assert first["phase"] == "Healthy", f"first phase {first['phase']}, expected Healthy"

    applied = apply(control_plane, namespace, newer)
    assert applied.returncode == 0, applied.stderr
    paused = wait_status(
        control_plane,
        namespace,
        lambda s: s["phase"] == "Paused" and s.get("currentStepIndex") == 1,
        "Paused at the pause: {} step (index 1)",
    )["status"]
    assert paused["canaryRevision"] == new, f"canary revision {paused['canaryRevision']}, expected {new}"

    observations: list[str] = []
    deadline = time.monotonic() + OBSERVE_SECONDS
    pokes = 0
    next_poke = time.monotonic()
    while time.monotonic() < deadline:
        if time.monotonic() >= next_poke:
            pokes += 1
            poke(control_plane, namespace, pokes)
            next_poke += 1.0
        status = md(control_plane, namespace)["status"]
        replicas = replicas_by_revision(control_plane, namespace)
        seen = {
            "phase": status["phase"],
            "step": status.get("currentStepIndex"),
            "stable": status["stableRevision"],
            "weights": status["weights"],
            "replicas": replicas,
            "message": status.get("message"),
        }
        observations.append(json.dumps(seen, sort_keys=True))
        shown = f"after {len(observations)} polls and {pokes} pokes: {observations[-1]}; before: {observations[-4:-1]}"
        assert replicas == {new: CANARY_PODS, stable: STABLE_PODS}, (
            f"Deployment replicas {replicas} while Paused, expected canary {new}: {CANARY_PODS}, "
            f"stable {stable}: {STABLE_PODS}; {shown}"
        )
        assert status["weights"]["canary"] <= MAX_CANARY_WEIGHT, (
            f"canary weight {status['weights']['canary']} while Paused, expected at most {MAX_CANARY_WEIGHT}; {shown}"
        )
        assert status["phase"] == "Paused", f"phase {status['phase']} before the promotion, expected Paused; {shown}"
        assert status.get("currentStepIndex") == 1, f"step {status.get('currentStepIndex')}, expected 1; {shown}"
        assert status["stableRevision"] == stable, f"stable revision {status['stableRevision']}, expected {stable}"
        time.sleep(0.25)  # the polling cadence; the deadline bounds the observation, nothing waits on it

    promoted = plugin(control_plane, "promote", "fraud-scorer", "-n", namespace)
    assert promoted.returncode == 0, promoted.stderr
    done = wait_status(
        control_plane,
        namespace,
        lambda s: s["phase"] == "Healthy" and s["stableRevision"] == new,
        f"Healthy with {new} stable after the promotion",
    )["status"]
    assert done["canaryRevision"] == "", f"canary revision {done['canaryRevision']!r} after the promotion"
    after = replicas_by_revision(control_plane, namespace)
    assert after[new] == REPLICAS, f"replicas after the promotion: {after}, expected {new}: {REPLICAS}"
    wait_for(lambda: replicas_by_revision(control_plane, namespace)[stable] == 0, what=f"the old stable {stable} at 0")
