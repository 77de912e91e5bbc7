"""The operator SIGKILLed at every phase of a rollout, and restarted, until the rollout is done.

The operator runs as its own process. Each time the status shows a position (stage, step, phase) it
was not yet killed at, the process is killed with SIGKILL. With no operator running the cluster is
still, so the invariants are checked then, on a state that cannot move under the check:

- traffic (a route weight, a mirror, the active Service) reaches only a revision with enough available pods;
- the children are exactly the stable and the new revision's Deployments: no duplicate, no orphan;
- no step, stage or start was done twice (history), so a restart resumed where the last run stopped.

Each stage lasts longer than an operator takes to restart, so every phase listed is observed.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

from modelrollout.devcluster.stack import operator_process
from modelrollout.simulator.exporter import Behaviour
from tests.conftest import FIGURES
from tests.integration.conftest import get_json, wait_for
from tests.integration.helpers import (
    NEXT_VERSION,
    apply,
    gateway_that_mirrors,
    healthy,
    kubectl_apply,
    md,
    owned_deployments,
    plugin,
    revision_of,
    sample,
    template,
    with_version,
)

REPLICAS = 2
ONCE = ("RolloutStarted", "ShadowStarted", "ShadowCompleted", "PreviewReady", "Switched", "Promoted")


def checks(monitoring) -> dict:
    return {
        "templates": [{"name": "error-rate"}],
        "args": [{"name": "prometheus", "value": monitoring.prometheus.url}],
    }


def canary_with_shadow(monitoring) -> dict:
    steps = [
        {"setWeight": 50},
        {"pause": {"duration": "8s"}},
        {"analysis": checks(monitoring)},
        {"pause": {}},
        {"setWeight": 100},
    ]
    strategy = {
        "shadow": {"mirrorPercent": 50, "duration": "8s"},
        "canary": {"steps": steps, "scaleDownDelaySeconds": 8},
    }
    return sample(replicas=REPLICAS, strategy=strategy, trafficRouting={"gatewayAPI": {"parentRefs": [{"name": "gw"}]}})


def blue_green(monitoring) -> dict:
    settings = {"previewReplicas": 1, "scaleDownDelaySeconds": 8, "postPromotionAnalysis": checks(monitoring)}
    return sample(replicas=REPLICAS, strategy={"blueGreen": settings})


SCENARIOS = {
    # (spec, positions that must have been killed at: (stage, step, phase, scaling down))
    "shadow-then-canary": (
        canary_with_shadow,
        {
            ("Shadow", 0, "Progressing", False),
            ("Canary", 1, "Progressing", False),
            ("Canary", 2, "Progressing", False),
            ("Canary", 3, "Paused", False),
            ("", 0, "Healthy", True),
        },
    ),
    "blue-green": (
        blue_green,
        {("Preview", 0, "Paused", False), ("PostPromotion", 0, "Progressing", False), ("", 0, "Healthy", True)},
    ),
}


def position(status: dict) -> tuple[str, int, str, bool]:
    return (
        status.get("stage") or "",
        int(status.get("currentStepIndex") or 0),
        status.get("phase", ""),
        bool(status.get("scaleDowns")),
    )


def available(deployment: dict | None) -> int:
    return int(((deployment or {}).get("status") or {}).get("availableReplicas") or 0)


def assert_still_state_is_safe(control_plane, namespace: str, stable: str, new: str) -> None:
    children = {
        d["metadata"]["labels"]["modelrollout.io/revision"]: d for d in owned_deployments(control_plane, namespace)
    }
    assert set(children) <= {stable, new} and len(owned_deployments(control_plane, namespace)) == len(children)
    # Traffic moves by Service selectors on the revision every pod carries from its template, never by
    # labels written on pods one at a time: a switch is one write, so no pod is selected half-way.
    services = get_json(control_plane, "services", "-n", namespace, "-l", "modelrollout.io/deployment=fraud-scorer")
    for service in services["items"]:
        selector = service["spec"]["selector"]
        assert "modelrollout.io/track" not in selector, (service["metadata"]["name"], selector)
    pods = get_json(control_plane, "pods", "-n", namespace, "-l", "modelrollout.io/deployment=fraud-scorer")
    assert all("modelrollout.io/track" not in pod["metadata"]["labels"] for pod in pods["items"])
    active = get_json(control_plane, "service", "fraud-scorer", "-n", namespace)["spec"]["selector"]
    serving = active.get("modelrollout.io/revision", stable)
    assert available(children.get(serving)) >= REPLICAS, f"the active Service selects {serving}, not at full size"
    route = get_json(control_plane, "httproute", "fraud-scorer", "-n", namespace)
    if route is not None:
        rule = route["spec"]["rules"][0]
        weight = rule["backendRefs"][1]["weight"]
        mirrored = any(f["type"] == "RequestMirror" for f in rule.get("filters", []))
        needed = math.ceil(REPLICAS * weight / 100) if weight else (1 if mirrored else 0)
        canary_selects = get_json(control_plane, "service", "fraud-scorer-canary", "-n", namespace)["spec"]["selector"]
        target = canary_selects["modelrollout.io/revision"]
        assert available(children.get(target)) >= needed, f"weight {weight}, mirror {mirrored} on {target}"
    history = md(control_plane, namespace)["status"]["history"]
    repeated = Counter(e["action"] for e in history if e["action"] in ONCE)
    assert all(count == 1 for count in repeated.values()), repeated
    completed = Counter(e["message"] for e in history if e["action"] == "StepCompleted")
    assert all(count == 1 for count in completed.values()), completed


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_operator_killed_at_every_phase_resumes_and_finishes(control_plane, monitoring, namespace, scenario):
    make, required = SCENARIOS[scenario]
    gateway_that_mirrors(control_plane, namespace, "gw")
    kubectl_apply(control_plane, namespace, template("error-rate"))
    body = make(monitoring)
    stable, new = revision_of(body), revision_of(with_version(body, NEXT_VERSION))
    for revision in (stable, new):
        monitoring.simulator.set(namespace, revision, Behaviour())
    settings = {"MODELROLLOUT_HTTP_ADDRESS": "off", "MODELROLLOUT_PROMETHEUS_URL": monitoring.prometheus.url}
    log = control_plane.workdir / "logs" / f"operator-{namespace}.log"
    killed: list[tuple[str, int, str, bool]] = []
    approved: set[tuple[str, int, str, bool]] = set()

    def finished(status: dict) -> bool:
        return status.get("stableRevision") == new and status.get("phase") == "Healthy" and not status["scaleDowns"]

    with operator_process(control_plane.kubeconfig, log, settings):
        assert apply(control_plane, namespace, body).returncode == 0
        wait_for(lambda: healthy(control_plane, namespace), what="first Ready")
    assert apply(control_plane, namespace, with_version(body, NEXT_VERSION)).returncode == 0
    for _ in range(40):
        with operator_process(control_plane.kubeconfig, log, settings) as process:

            def moved_on() -> dict | None:
                body = md(control_plane, namespace)
                status = (body or {}).get("status") or {}
                if body["metadata"]["generation"] != status.get("observedGeneration"):
                    return None
                if finished(status) or position(status) not in killed:
                    return status
                if status.get("phase") == "Paused" and position(status) not in approved:
                    approved.add(position(status))  # a person approves once, after the kill there
                    assert plugin(control_plane, "promote", "fraud-scorer", "-n", namespace).returncode == 0
                return None

            seen = wait_for(moved_on, timeout=90, what=f"a phase not yet killed at (killed at {killed})")
            process.kill()
            process.wait(timeout=30)
        if finished(seen):
            break
        still = md(control_plane, namespace)["status"]  # what the dead operator last wrote
        killed.append(position(still))
        assert_still_state_is_safe(control_plane, namespace, stable, new)
    assert required <= set(killed), f"killed at {killed}"
    shown = ", ".join(
        f"{stage or '-'}/{step}/{phase}{'/scaling-down' if down else ''}" for stage, step, phase, down in killed
    )
    FIGURES[f"operator SIGKILLed {len(killed)} times ({scenario}) at"] = shown
    wait_for(lambda: healthy(control_plane, namespace), what="Ready at the new revision")
    names = sorted(d["metadata"]["name"] for d in owned_deployments(control_plane, namespace))
    assert names == sorted([f"fraud-scorer-{stable}", f"fraud-scorer-{new}"])
    assert md(control_plane, namespace)["metadata"]["generation"] == 2  # the operator never wrote the spec
