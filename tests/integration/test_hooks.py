"""Rollout hooks on the local control plane, against a real HTTP server on loopback: every point fires
once, in order, with the documented payload; a gating hook that fails aborts before the route gives the
new model any weight; one that pauses is skipped by `kubectl modelrollout promote`."""

from __future__ import annotations

from collections import Counter

from tests.conftest import FIGURES
from tests.integration.conftest import get_json, wait_for
from tests.integration.helpers import (
    apply,
    gateway_that_mirrors,
    healthy,
    object_versions,
    plugin,
    route_weights,
    sample,
    wait_events,
    wait_status,
    with_version,
)
from tests.loopback import LoopbackServer

ROUTE = {"gatewayAPI": {"parentRefs": [{"name": "public"}]}}
GATING = ["preRollout", "preTrafficIncrease", "prePromotion"]
PAYLOAD_KEYS = {
    "hook",
    "point",
    "modelDeployment",
    "revision",
    "stableRevision",
    "model",
    "canaryWeight",
    "metadata",
    "time",
}


def hooked(hooks: list[dict], steps: list[dict]) -> dict:
    return sample(replicas=2, strategy={"canary": {"steps": steps}}, trafficRouting=ROUTE, hooks=hooks)


def serving(control_plane, namespace: str, body: dict) -> str:
    """Apply `body`, wait until it serves, then ask for the next model version; returns the stable revision."""
    gateway_that_mirrors(control_plane, namespace)
    assert apply(control_plane, namespace, body).returncode == 0
    stable = wait_for(lambda: healthy(control_plane, namespace), what="first Ready")["status"]["stableRevision"]
    assert apply(control_plane, namespace, with_version(body, "v2")).returncode == 0
    return stable


def test_every_hook_point_fires_once_in_order_with_the_documented_payload(control_plane, operator, namespace):
    server = LoopbackServer(lambda request: (200, {"ok": True}))
    try:
        hooks = [
            {
                "name": "gate",
                "at": GATING,
                "webhook": {"url": server.url + "/gate"},
                "metadata": {"suite": "golden-set"},
            },
            {"name": "told", "at": ["postPromotion", "onEvent"], "webhook": {"url": server.url + "/told"}},
        ]
        stable = serving(control_plane, namespace, hooked(hooks, [{"setWeight": 50}, {"setWeight": 100}]))
        done = wait_status(
            control_plane, namespace, lambda s: s["stableRevision"] != stable and s["phase"] == "Healthy", "promoted"
        )["status"]
        new = done["stableRevision"]
        server.wait_for(lambda r: r.path == "/told" and r.json()["point"] == "postPromotion", "postPromotion call")
        server.wait_for(
            lambda r: r.path == "/told" and r.json().get("event", {}).get("reason") == "Promoted", "the Promoted event"
        )
    finally:
        server.stop()
    bodies = [(request.path, request.json()) for request in server.requests]
    gate = [body for path, body in bodies if path == "/gate"]
    assert [(b["point"], b.get("step")) for b in gate] == [
        ("preRollout", None),
        ("preTrafficIncrease", 1),
        ("preTrafficIncrease", 2),
        ("prePromotion", None),
    ]
    assert [b["canaryWeight"] for b in gate] == [0, 50, 100, 100]
    first = gate[0]
    assert set(first) == PAYLOAD_KEYS
    assert first["modelDeployment"]["name"] == "fraud-scorer" and first["modelDeployment"]["namespace"] == namespace
    assert (first["revision"], first["stableRevision"]) == (new, stable)
    assert first["model"] == {"name": "fraud-scorer", "version": "v2", "uri": "s3://models/fraud/2026-11-20"}
    assert first["metadata"] == {"suite": "golden-set"}
    told = Counter(b["point"] for path, b in bodies if path == "/told" and b["revision"] == new)
    assert told["postPromotion"] == 1
    reasons = [b["event"]["reason"] for path, b in bodies if path == "/told" and b["point"] == "onEvent"]
    assert {"RolloutStarted", "HookSucceeded", "StepCompleted", "Promoted"} <= set(reasons)
    recorded = {(h["point"], h.get("step")): h for h in done["hooks"]}
    assert len(recorded) == 4 and all(h["phase"] == "Succeeded" and h["code"] == 200 for h in recorded.values())
    assert all(h["attempts"] == 1 and h["latencySeconds"] > 0 for h in recorded.values())
    latencies = sorted(h["latencySeconds"] for h in recorded.values())
    FIGURES["gating hook calls to a loopback server: latency min / max (s)"] = f"{latencies[0]} / {latencies[-1]}"
    succeeded = [e for e in wait_events(control_plane, namespace, "HookSucceeded") if e["reason"] == "HookSucceeded"]
    assert any("(postPromotion)" in e["note"] for e in succeeded)


def test_a_failing_gating_hook_aborts_before_the_route_gives_the_new_model_any_weight(
    control_plane, operator, namespace
):
    server = LoopbackServer(lambda request: (503, {"error": "load test failed: p99 1.8s"}))
    try:
        hook = {
            "name": "load-test",
            "at": ["preTrafficIncrease"],
            "webhook": {"url": server.url + "/run"},
            "retries": 1,
            "retryIntervalSeconds": 0.5,
        }
        body = hooked([hook], [{"setWeight": 50}, {"setWeight": 100}])
        gateway_that_mirrors(control_plane, namespace)
        assert apply(control_plane, namespace, body).returncode == 0
        stable = wait_for(lambda: healthy(control_plane, namespace), what="first Ready")["status"]["stableRevision"]
        with object_versions(control_plane, namespace, "httproute", "fraud-scorer") as routes:
            assert apply(control_plane, namespace, with_version(body, "v2")).returncode == 0
            aborted = wait_status(control_plane, namespace, lambda s: s.get("abort"), "aborted by the hook")["status"]
        assert [r.path for r in server.requests] == ["/run", "/run"]  # one retry, then onFailure: abort
    finally:
        server.stop()
    assert aborted["abort"]["reason"] == "HookFailed"
    assert "hook load-test (preTrafficIncrease) failed: HTTP 503" in aborted["abort"]["message"]
    assert aborted["stableRevision"] == stable and aborted["weights"]["canary"] == 0
    canary_weights = [v["spec"]["rules"][0]["backendRefs"][1]["weight"] for v in routes]
    assert len(routes) >= 1 and set(canary_weights) == {0}
    assert route_weights(control_plane, namespace)[1] == 0
    (record,) = aborted["hooks"]
    assert (record["phase"], record["attempts"], record["code"]) == ("Failed", 2, 503)
    warnings = [e for e in wait_events(control_plane, namespace, "HookFailed") if e["reason"] == "HookFailed"]
    assert warnings and all(e["type"] == "Warning" for e in warnings)


def test_a_pausing_hook_is_skipped_by_a_person_and_the_rollout_goes_on(control_plane, operator, namespace):
    server = LoopbackServer(lambda request: (500, "approval service down"))
    try:
        hook = {"name": "approval", "at": ["preTrafficIncrease"], "webhook": {"url": server.url}, "onFailure": "pause"}
        serving(control_plane, namespace, hooked([hook], [{"setWeight": 50}, {"pause": {}}]))
        paused = wait_status(
            control_plane,
            namespace,
            lambda s: [p["reason"] for p in s.get("pauseReasons") or []] == ["HookFailed"],
            "paused on the hook",
        )["status"]
        assert route_weights(control_plane, namespace)[1] == 0
        assert "promote|retry-analysis|abort" in paused["message"]
        shown = plugin(control_plane, "status", "fraud-scorer", "-n", namespace).stdout
        assert "Hook:        approval at preTrafficIncrease step 1: Failed, HTTP 500 in " in shown
        assert "after 1 attempt(s): approval service down" in shown
        skipped = plugin(control_plane, "promote", "fraud-scorer", "-n", namespace)
        assert skipped.returncode == 0, skipped.stderr
        at_fifty = wait_status(
            control_plane, namespace, lambda s: s["weights"]["canary"] == 50, "weight 50 once skipped"
        )["status"]
    finally:
        server.stop()
    assert at_fifty["hooks"][0]["phase"] == "Skipped"
    assert at_fifty["lastRequest"]["message"].endswith("failed hook approval (preTrafficIncrease) skipped, not passed")
    assert route_weights(control_plane, namespace)[1] == 50


# A hook's Job reads the payload it is given and passes only for the step it was written for.
CHECK_PAYLOAD = (
    "import json, os, sys; payload = json.loads(os.environ['MODELROLLOUT_HOOK_PAYLOAD']); "
    "print(payload['point'], payload.get('step'), payload['revision']); sys.exit(0 if payload.get('step') == 1 else 3)"
)


def test_a_job_hook_runs_as_a_real_process_and_its_failure_stops_the_rollout(
    control_plane, operator, job_runner, namespace
):
    container = {"name": "check", "image": "python:3.12-slim", "command": ["python", "-c", CHECK_PAYLOAD]}
    job = {"spec": {"template": {"spec": {"containers": [container]}}}, "timeoutSeconds": 60}
    hook = {"name": "smoke-test", "at": ["preTrafficIncrease"], "job": job}
    serving(control_plane, namespace, hooked([hook], [{"setWeight": 50}, {"setWeight": 100}]))
    aborted = wait_status(control_plane, namespace, lambda s: s.get("abort"), "aborted at step 2", timeout=120)[
        "status"
    ]
    assert aborted["abort"]["reason"] == "HookFailed" and "failed (BackoffLimitExceeded" in aborted["abort"]["message"]
    passed, failed = sorted(aborted["hooks"], key=lambda record: record["step"])
    assert (passed["step"], passed["phase"], passed["attempts"]) == (0, "Succeeded", 1)
    assert (failed["step"], failed["phase"], failed["attempts"]) == (1, "Failed", 1)
    history = [entry["action"] for entry in aborted["history"]]
    assert history.count("StepCompleted") == 1  # step 1 (50%) passed its hook; step 2 never moved traffic
    assert route_weights(control_plane, namespace) == [100, 0]
    jobs = get_json(control_plane, "jobs", "-n", namespace)["items"]
    exits = sorted(
        (pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"])
        for pod in get_json(control_plane, "pods", "-n", namespace, "-l", "batch.kubernetes.io/job-name")["items"]
    )
    assert len(jobs) == 2 and exits == [0, 3]  # really run: the second exited with the script's own code
