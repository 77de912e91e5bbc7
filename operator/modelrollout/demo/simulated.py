"""`modelrollout demo --simulator`: the same rollout story on the traffic simulator instead of real servers.

A fallback for machines that cannot make a private network namespace (no root, user namespaces off), where
kwok's pod IPs cannot be served: the traffic simulator (a stand-in, named as such) sends each revision the
share of traffic the operator published in status and exports the metrics a model server would, with the
behaviour each demo version is configured to have. The benchmarks drive the same simulator through
`devcluster.stack.local_stack`. Everything runs on 127.0.0.1 and is stopped at the end (unless --keep).

1. fraud-scorer 2026-11-20 is deployed and serves.
2. 2026-11-27, a good model, first runs in shadow, then walks its canary steps with analysis, and is promoted.
3. 2026-12-01, a model whose prediction scores shifted, is stopped in shadow.
4. 2026-12-04, a hotfix released straight to canary with 8% errors, is rolled back when ModelErrorRateHigh fires.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from modelrollout.core.enums import Phase
from modelrollout.core.spec import parse_spec
from modelrollout.devcluster import cluster
from modelrollout.devcluster.stack import Stack, error_rate_alert, local_stack
from modelrollout.simulator.exporter import Behaviour
from modelrollout.simulator.process import SimulatorProcess

REPO = Path(__file__).resolve().parents[3]
NAMESPACE = "fraud"
TOTAL_RPS = 200.0
VERSIONS = {
    "2026-11-20": Behaviour(error_ratio=0.002, latency_seconds=0.04, null_ratio=0.004),
    "2026-11-27": Behaviour(error_ratio=0.001, latency_seconds=0.03, null_ratio=0.003),
    "2026-12-01": Behaviour(error_ratio=0.001, latency_seconds=0.03, null_ratio=0.003, score_mean=0.5),
    "2026-12-04": Behaviour(error_ratio=0.08, latency_seconds=0.04, null_ratio=0.004),
}
SHADOWED = ("2026-11-27", "2026-12-01")  # the hotfix skips the shadow
CHECKS = ("model-error-rate", "model-latency-p99", "model-prediction-distribution-shift")


def demo_templates(prometheus_url: str) -> list[dict[str, Any]]:
    """The built-in error-rate and p99 checks, as namespaced copies with demo-speed intervals."""
    built_ins = yaml.safe_load_all((REPO / "manifests/analysis-templates/model-templates.yaml").read_text())
    chosen = []
    for template in built_ins:
        if template["metadata"]["name"] not in CHECKS:
            continue
        fast = copy.deepcopy(template)
        fast["kind"] = "ModelAnalysisTemplate"
        fast["metadata"] = {"name": template["metadata"]["name"], "namespace": NAMESPACE}
        fast["spec"]["metrics"][0].update({"interval": "2s", "count": 3, "initialDelay": "4s"})
        for arg in fast["spec"]["args"]:
            arg["value"] = {"prometheus": prometheus_url, "window": "10s"}.get(arg["name"], arg.get("value"))
        chosen.append(fast)
    return chosen


def model_deployment(version: str) -> dict[str, Any]:
    body = yaml.safe_load((REPO / "manifests/samples/fraud-scorer.yaml").read_text())
    body["metadata"]["namespace"] = NAMESPACE
    analysis = {"analysis": {"templates": [{"name": "model-error-rate"}, {"name": "model-latency-p99"}]}}
    shadow = {
        "mirrorPercent": 100,
        "duration": "6s",
        "analysis": {"templates": [{"name": "model-prediction-distribution-shift"}]},
    }
    body["spec"].update(
        {
            "replicas": 4,
            # No data plane runs here (the simulator plays it): Traefik's objects are written and not served.
            "trafficRouting": {"traefik": {"match": "Host(`fraud.models.example`)"}},
            "strategy": {
                "canary": {
                    "steps": [
                        {"setWeight": 10},
                        {"pause": {"duration": "5s"}},
                        analysis,
                        {"setWeight": 50},
                        {"pause": {"duration": "5s"}},
                        analysis,
                        {"setWeight": 100},
                    ],
                    "scaleDownDelaySeconds": 5,
                    "abortScaleDownDelaySeconds": 5,
                }
            },
            "rollbackOn": {
                "pollInterval": "1s",
                "alerts": [{"alertname": "ModelErrorRateHigh", "labels": {"namespace": NAMESPACE}}],
            },
        }
    )
    if version in SHADOWED:
        body["spec"]["strategy"]["shadow"] = shadow
    body["spec"]["model"].update({"version": version, "uri": f"s3://models/fraud/{version}"})
    body["spec"]["template"]["spec"]["containers"][0]["args"] = [f"--model-uri=s3://models/fraud/{version}"]
    return body


class TrafficDriver(threading.Thread):
    """Sends each revision the share of traffic the operator published (what a data plane would do)."""

    def __init__(self, running: cluster.Cluster, simulator: SimulatorProcess, behaviours: dict[str, Behaviour]):
        super().__init__(name="traffic-driver", daemon=True)
        self._running, self._simulator, self._behaviours = running, simulator, behaviours
        self._stop = threading.Event()
        self.live: set[str] = set()  # revisions deployed so far: only those have pods, so only those export

    def run(self) -> None:
        while not self._stop.wait(0.5):
            status = _status(self._running)
            weights = status.get("weights") or {}
            shares = {status.get("stableRevision"): weights.get("stable", 100)}
            if status.get("canaryRevision"):
                # A mirror copies requests that go to stable: the new revision sees those too.
                mirrored = weights.get("stable", 100) * weights.get("mirror", 0) / 100
                shares[status["canaryRevision"]] = weights.get("canary", 0) + mirrored
            for revision, behaviour in self._behaviours.items():
                if revision not in self.live:
                    continue
                share = shares.get(revision, 0)
                rps = TOTAL_RPS * share / 100 if share else 0.001  # a trickle keeps the series alive
                self._simulator.set(
                    NAMESPACE, revision, Behaviour(**{**behaviour.__dict__, "requests_per_second": rps})
                )

    def stop(self) -> None:
        self._stop.set()


def _status(running: cluster.Cluster) -> dict[str, Any]:
    result = running.kubectl("get", "md", "fraud-scorer", "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(result.stdout).get("status", {}) if result.returncode == 0 else {}


def _held_at(status: dict[str, Any], revision: str) -> bool:
    """The rollout of `revision` ended Degraded (not an earlier revision's end still showing)."""
    return status.get("phase") == Phase.DEGRADED and (status.get("abort") or {}).get("revision") == revision


def _follow(running: cluster.Cluster, started: float, done, timeout: float = 300.0) -> dict[str, Any]:
    """Print every change of the rollout until `done(status)`."""
    shown = None
    printed: set[tuple[str, str, str]] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _status(running)
        weights = status.get("weights") or {}
        split = f"stable {weights.get('stable', 0):>3}% canary {weights.get('canary', 0):>3}%"
        if weights.get("mirror"):
            split += f" mirror {weights['mirror']}%"
        line = f"{status.get('phase', '…'):<11} {split}  {status.get('message', '')}"
        if line != shown:
            print(f"  [{time.monotonic() - started:6.1f}s] {line}", flush=True)
            shown = line
        for run in status.get("analysisRuns") or []:
            for metric in run.get("metrics", []):
                for measured in metric.get("measurements") or []:
                    key = (run["key"], metric["name"], measured.get("time", ""))
                    if key not in printed:
                        printed.add(key)
                        shown_value = measured.get("value", "no data")
                        print(
                            f"             measured {metric['name']:<12} {shown_value:>12}  {measured.get('phase', '')}"
                        )
        if done(status):
            return status
        time.sleep(0.5)
    raise TimeoutError("the demo rollout did not finish in time")


def deploy(running, simulator: SimulatorProcess, driver: TrafficDriver, revision: str, version: str) -> None:
    """Apply `version`; its pods start exporting (with no traffic yet) as the spec is applied."""
    simulator.set(NAMESPACE, revision, dataclasses.replace(VERSIONS[version], requests_per_second=0.001))
    driver.live.add(revision)
    running.kubectl_retrying("apply", "-f", "-", input=json.dumps(model_deployment(version)))


def run(keep: bool = False) -> int:
    print(
        "modelrollout demo --simulator: the rollout story on a traffic simulator (a stand-in for model servers);"
        " building or reusing the local control plane…"
    )
    revisions = {version: parse_spec(model_deployment(version)["spec"]).revision for version in VERSIONS}
    behaviours = {revisions[version]: behaviour for version, behaviour in VERSIONS.items()}
    try:
        with local_stack([error_rate_alert("ModelErrorRateHigh", 0.05, "10s")]) as stack:
            return _story(stack, revisions, behaviours, keep)
    finally:
        print("demo stopped: control plane, Prometheus, simulator and operator are gone.")


def _story(stack: Stack, revisions: dict[str, str], behaviours: dict[str, Behaviour], keep: bool) -> int:
    running, simulator, prometheus = stack.cluster, stack.simulator, stack.prometheus
    driver = TrafficDriver(running, simulator, behaviours)
    summary: list[str] = []
    try:
        running.kubectl_retrying("create", "namespace", NAMESPACE)
        running.kubectl_retrying(
            "apply", "-f", "-", input="\n---\n".join(json.dumps(t) for t in demo_templates(prometheus.url))
        )
        print(f"  control plane {running.server}, Prometheus {prometheus.url}, traffic simulator {simulator.address}")
        print(f"  kubeconfig: {running.kubeconfig}\n")
        driver.start()
        started = time.monotonic()

        print("1. fraud-scorer 2026-11-20 goes live")
        deploy(running, simulator, driver, revisions["2026-11-20"], "2026-11-20")
        _follow(running, started, lambda s: s.get("phase") == Phase.HEALTHY)
        summary.append(f"2026-11-20 ({revisions['2026-11-20']}) deployed and Healthy")

        print(
            "\n2. 2026-11-27, a good model: shadow (prediction scores compared with stable), then canary"
            " 10% → 50% → 100% with error-rate and p99 checks"
        )
        mark = time.monotonic()
        deploy(running, simulator, driver, revisions["2026-11-27"], "2026-11-27")
        good = _follow(
            running,
            started,
            lambda s: s.get("stableRevision") == revisions["2026-11-27"] and s.get("phase") == Phase.HEALTHY,
        )
        summary.append(
            f"2026-11-27 ({revisions['2026-11-27']}) promoted in {time.monotonic() - mark:.0f}s "
            f"after {len([h for h in good['history'] if h['action'] == 'StepCompleted'])} steps"
        )

        print("\n3. 2026-12-01, prediction scores shifted: the shadow comparison should stop it before live traffic")
        mark = time.monotonic()
        deploy(running, simulator, driver, revisions["2026-12-01"], "2026-12-01")
        shifted = _follow(running, started, lambda s: _held_at(s, revisions["2026-12-01"]))
        abort = shifted.get("abort") or {}
        summary.append(
            f"2026-12-01 ({revisions['2026-12-01']}) stopped in shadow after {time.monotonic() - mark:.0f}s, "
            f"never served live traffic: {abort.get('reason')}: {abort.get('message')}"
        )

        print(
            "\n4. 2026-12-04, a hotfix straight to canary (8% errors): the ModelErrorRateHigh alert should roll it back"
        )
        mark = time.monotonic()
        deploy(running, simulator, driver, revisions["2026-12-04"], "2026-12-04")
        bad = _follow(running, started, lambda s: _held_at(s, revisions["2026-12-04"]))
        abort = bad.get("abort") or {}
        summary.append(
            f"2026-12-04 ({revisions['2026-12-04']}) rolled back after {time.monotonic() - mark:.0f}s: "
            f"{abort.get('reason')}: {abort.get('message')}"
        )
        summary.append(f"stable revision now {bad.get('stableRevision')}; canary weight {bad['weights']['canary']}%")

        print("\nSummary")
        for line in summary:
            print(f"  - {line}")
        print(
            "\nWhat Git would show: the ModelDeployment asks for 2026-12-04; the cluster serves 2026-11-27 and the"
            "\nobject is Degraded (Stalled=True) until Git is changed back or `kubectl modelrollout retry` is run."
        )
    except TimeoutError as error:
        running.remove_workdir = False  # keep the logs for whoever reads the failure
        print(f"\ndemo failed: {error}; logs in {running.workdir / 'logs'}", file=sys.stderr)
        return 1
    else:
        if keep:
            print(f"\n--keep: everything stays up. export KUBECONFIG={running.kubeconfig}; stop with Ctrl-C.")
            while True:
                time.sleep(3600)
        return 0
    finally:
        driver.stop()
