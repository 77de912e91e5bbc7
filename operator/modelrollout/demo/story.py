"""The demo's story on real parts: real models in real MLServers behind Traefik, live requests, Prometheus.

1. fraud-scorer 2026-11-20 (the `good` model) goes live; clients start sending through Traefik.
2. 2026-11-27, also `good`: shadow (every request mirrored to it; its prediction-score histogram compared
   with the stable one's by PSI), then canary 10% → 50% → 100% with MLServer's 5xx ratio and p99 checked
   at each weight, then promoted.
3. 2026-12-01, `shifted` (a model whose scores are far less confident): stopped in shadow by the PSI of
   its real prediction histogram; it never answers a live request.
4. 2026-12-04, `hotfix-errors` (answers 500 for ~30% of rows), released straight to canary: MLServer's 5xx
   ratio fires the shipped MLServerErrorRateHigh alert, and the operator rolls it back on its own.

Checks and the alert are the shipped ones, copied with demo-speed windows (seconds instead of minutes).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import yaml

from modelrollout.core.enums import Phase
from modelrollout.core.spec import parse_spec
from modelrollout.demo.follow import DemoFailed, Follower
from modelrollout.devcluster.realstack import RealStack
from modelrollout.modelserver import behaviour, models
from modelrollout.modelserver.loadgen import LoadGenerator
from modelrollout.modelserver.settings import model_deployment as served_model_deployment

REPO = Path(__file__).resolve().parents[3]
NAMESPACE = "fraud"
NAME = "fraud-scorer"
HOST = "fraud.models.example"
RPS = 40.0
REPLICAS = 2  # each MLServer takes ~350 MB: at most three revisions of two pods run at once
WINDOW = "10s"  # the rate window of the 5xx and p99 checks and of the alert
VERSIONS = {
    "2026-11-20": behaviour.GOOD,
    "2026-11-27": behaviour.GOOD,
    "2026-12-01": behaviour.SHIFTED,
    "2026-12-04": behaviour.HOTFIX_ERRORS,
}
SHADOWED = ("2026-11-27", "2026-12-01")  # the hotfix skips the shadow
HOTFIX = "2026-12-04"
HOTFIX_BAKE = "60s"  # the hotfix's pause at 10%: the alarm, not the step's analysis, decides
ALERT = "MLServerErrorRateHigh"
CHECKS = {  # shipped template name -> file
    "mlserver-error-rate": "real-server-templates.yaml",
    "mlserver-latency-p99": "real-server-templates.yaml",
    "model-prediction-distribution-shift": "model-templates.yaml",
}


def demo_templates(prometheus_url: str) -> list[dict[str, Any]]:
    """The shipped checks as namespaced copies measuring every 2s over seconds instead of minutes."""
    chosen = []
    for name, file in CHECKS.items():
        shipped = yaml.safe_load_all((REPO / "manifests" / "analysis-templates" / file).read_text())
        template = copy.deepcopy(next(t for t in shipped if t["metadata"]["name"] == name))
        template["kind"] = "ModelAnalysisTemplate"
        template["metadata"] = {"name": name, "namespace": NAMESPACE}
        # The shadow's histograms are compared over a window in which both sides saw the same mirrored
        # requests (not a window reaching back before the mirror began); the rate checks wait for a few scrapes.
        window, delay = ("5s", "8s") if "distribution" in name else (WINDOW, "4s")
        template["spec"]["metrics"][0].update({"interval": "2s", "count": 3, "initialDelay": delay})
        for arg in template["spec"]["args"]:
            arg["value"] = {"prometheus": prometheus_url, "window": window}.get(arg["name"], arg.get("value"))
        chosen.append(template)
    return chosen


def demo_alert() -> dict:
    """The shipped MLServerErrorRateHigh rule, with the demo's window and without its `for: 1m`."""
    groups = yaml.safe_load((REPO / "manifests" / "monitoring" / "rules.yml").read_text())["groups"]
    rule = next(rule for group in groups for rule in group["rules"] if rule.get("alert") == ALERT)
    return {"alert": ALERT, "expr": rule["expr"].replace("[2m]", f"[{WINDOW}]"), "labels": rule["labels"]}


def model_deployment(version: str) -> dict[str, Any]:
    """The ModelDeployment asking for `version`: real model servers behind Traefik."""
    analysis = {"analysis": {"templates": [{"name": "mlserver-error-rate"}, {"name": "mlserver-latency-p99"}]}}
    first_pause = HOTFIX_BAKE if version == HOTFIX else "5s"
    steps = [
        {"setWeight": 10},
        {"pause": {"duration": first_pause}},
        analysis,
        {"setWeight": 50},
        {"pause": {"duration": "5s"}},
        analysis,
        {"setWeight": 100},
    ]
    strategy: dict[str, Any] = {"canary": {"steps": steps, "scaleDownDelaySeconds": 5, "abortScaleDownDelaySeconds": 5}}
    if version in SHADOWED:
        strategy["shadow"] = {
            "mirrorPercent": 100,
            "duration": "6s",
            "analysis": {"templates": [{"name": "model-prediction-distribution-shift"}]},
        }
    return served_model_deployment(
        NAME,
        NAMESPACE,
        version,
        VERSIONS[version],
        routing={"traefik": {"match": f"Host(`{HOST}`)"}},
        strategy=strategy,
        replicas=REPLICAS,
        rollbackOn={"pollInterval": "1s", "alerts": [{"alertname": ALERT, "labels": {"namespace": NAMESPACE}}]},
        progressDeadlineSeconds=600,
    )


def revisions() -> dict[str, str]:
    """Model version -> the revision the operator names its pods by."""
    return {version: parse_spec(model_deployment(version)["spec"]).revision for version in VERSIONS}


def apply(stack: RealStack, *bodies: dict, timeout: float = 60.0) -> None:
    """kubectl apply, retried while the apiserver is briefly unavailable."""
    deadline = time.monotonic() + timeout
    while True:
        result = stack.cluster.kubectl(
            "apply", "-f", "-", input="\n---\n".join(json.dumps(b) for b in bodies), check=False
        )
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise DemoFailed(f"kubectl apply failed: {result.stderr.strip()}", [])
        time.sleep(1.0)


def held_at(status: dict, revision: str) -> bool:
    """The rollout of `revision` ended Degraded (not an earlier revision's end still showing)."""
    return status.get("phase") == Phase.DEGRADED and (status.get("abort") or {}).get("revision") == revision


def tell(stack: RealStack, started: float) -> list[str]:
    """Run the four steps, printing as they happen; returns the summary lines."""
    by_version = revisions()
    versions = {revision: version for version, revision in by_version.items()}
    apply(stack, *demo_templates(stack.prometheus.url))
    follower = Follower(stack, NAMESPACE, NAME, versions, started)
    summary: list[str] = []
    try:
        print(f"1. fraud-scorer 2026-11-20 ({by_version['2026-11-20']}, model `good`) goes live")
        apply(stack, model_deployment("2026-11-20"))
        follower.follow(lambda s: s.get("phase") == Phase.HEALTHY, "2026-11-20 Healthy")
        follower.wait_served("Traefik serving 2026-11-20")
        rows = models.load_dataset(models.ensure_models()).rows
        clients = LoadGenerator(stack.traefik.web_url, NAME, rows, rps=RPS, headers={"Host": HOST})
        follower.clients = clients.start()
        print(
            f"{'':24}clients start: {RPS:.0f} requests/s of data-set rows through Traefik (Host {HOST}). A `clients`"
            f"\n{'':24}line counts who answered them, by model version, once Traefik serves the operator's split"
        )
        try:
            follower.follow(lambda s: s.get("phase") == Phase.HEALTHY, "clients served by 2026-11-20")
            summary += _rollouts(follower, by_version)
        finally:
            final = clients.stop()
        summary.append(_clients_summary(final))
    finally:
        follower.close()
    return summary


def _rollouts(follower: Follower, by_version: dict[str, str]) -> list[str]:
    summary = [f"2026-11-20 ({by_version['2026-11-20']}) deployed; it served the first live requests"]
    stack = follower.stack

    print(
        "\n2. 2026-11-27 (model `good`): shadow first (every request mirrored to it, its prediction scores compared"
        "\n   with the stable model's by PSI), then canary 10% → 50% → 100% with MLServer's 5xx ratio and p99 checked"
    )
    mark = time.monotonic()
    good = by_version["2026-11-27"]
    apply(stack, model_deployment("2026-11-27"))
    status = follower.follow(
        lambda s: s.get("stableRevision") == good and s.get("phase") == Phase.HEALTHY, "2026-11-27 promoted"
    )
    steps = len([h for h in status.get("history", []) if h.get("action") == "StepCompleted"])
    summary.append(f"2026-11-27 ({good}) promoted in {time.monotonic() - mark:.0f}s after shadow and {steps} steps")

    print(
        "\n3. 2026-12-01 (model `shifted`, far less confident scores): the shadow's PSI should stop it before it"
        "\n   answers a single live request"
    )
    mark = time.monotonic()
    shifted = by_version["2026-12-01"]
    apply(stack, model_deployment("2026-12-01"))
    status = follower.follow(lambda s: held_at(s, shifted), "2026-12-01 stopped")
    abort = status.get("abort") or {}
    answered = follower.clients.snapshot().counts()
    served = sum(count for (version, _), count in answered.items() if version == "2026-12-01")
    summary.append(
        f"2026-12-01 ({shifted}) stopped in shadow after {time.monotonic() - mark:.0f}s, answered {served} live "
        f"requests: {abort.get('reason')}: {abort.get('message')}"
    )

    print(
        f"\n4. 2026-12-04 (model `hotfix-errors`, 500 for ~30% of rows) straight to canary, to bake {HOTFIX_BAKE} at"
        f"\n   10%: the {ALERT} alert on its real 5xx ratio should roll it back (a 5xx answer names no"
        "\n   model version, so the clients' line counts them as 5xx, not as canary)"
    )
    mark = time.monotonic()
    hotfix = by_version[HOTFIX]
    before = len(follower.clients.snapshot().answers)
    apply(stack, model_deployment(HOTFIX))
    status = follower.follow(lambda s: held_at(s, hotfix), "2026-12-04 rolled back")
    abort = status.get("abort") or {}
    errors = sum(1 for a in follower.clients.snapshot().answers[before:] if a.status >= 500)
    summary.append(
        f"2026-12-04 ({hotfix}) rolled back after {time.monotonic() - mark:.0f}s, clients got {errors} 5xx "
        f"answers from it: {abort.get('reason')}: {abort.get('message')}"
    )
    summary.append(
        f"stable revision now {status.get('stableRevision')} (2026-11-27); canary weight "
        f"{(status.get('weights') or {}).get('canary', 0)}%"
    )
    return summary


def _clients_summary(snapshot) -> str:
    answers = {version: 0 for version in VERSIONS}
    for (version, status), count in snapshot.counts().items():
        key = version if 200 <= status < 300 else ("5xx" if status >= 500 else f"status {status or 'none'}")
        answers[key] = answers.get(key, 0) + count
    shown = ", ".join(f"{key}: {count}" for key, count in answers.items())
    return f"clients sent {len(snapshot.answers)} requests through Traefik; answers by model version: {shown}"
