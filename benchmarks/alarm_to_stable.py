"""Benchmark: time from an alarm to the routing object sending 100% of traffic to stable.

Prints figures; asserts nothing. Runs everything on loopback: the local control plane, a real
Prometheus scraping the traffic simulator, and the operator as a separate process.

    .venv/bin/python benchmarks/alarm_to_stable.py [--rounds 5] [--intervals 100ms 1s 5s]

- poll <interval>: from the moment Prometheus shows ALERTS firing (the rule fires on the canary's
  error rate; the benchmark asks Prometheus every 20 ms) to the HTTPRoute's canary weight being 0, with
  rollbackOn.pollInterval set to that interval.
- webhook: from the Alertmanager-style POST to the HTTPRoute's canary weight being 0.

The route's change is timed by a watch on the HTTPRoute (the event's arrival), not by polling it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from modelrollout.controller.routing import ROUTER_KINDS
from modelrollout.core.enums import Router
from modelrollout.core.spec import parse_spec
from modelrollout.devcluster.stack import error_rate_alert, local_stack
from modelrollout.kube.client import KubeClient
from modelrollout.simulator.exporter import Behaviour

REPO = Path(__file__).resolve().parents[1]
(HTTPROUTE,) = ROUTER_KINDS[Router.GATEWAY_API]
WEBHOOK = "webhook"


def poll(check, timeout=120.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("benchmark condition not reached")


def model(namespace: str, version: str, alert: str, interval: str) -> dict:
    body = yaml.safe_load((REPO / "manifests/samples/fraud-scorer.yaml").read_text())
    body["metadata"]["namespace"] = namespace
    body["spec"].update(
        {
            "replicas": 2,
            "trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "public"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
            "rollbackOn": {
                "pollInterval": interval,
                "alerts": [{"alertname": alert, "labels": {"namespace": namespace}}],
            },
        }
    )
    body["spec"]["model"]["version"] = version
    return body


class RouteToStable:
    """When the namespace's HTTPRoute first sends 0% to the canary after `arm()`, from a watch."""

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self.at: float | None = None
        self._armed = threading.Event()
        self._kube, self._path = kube, HTTPROUTE.path(namespace)
        threading.Thread(target=self._run, daemon=True).start()

    def arm(self) -> None:
        self._armed.set()

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # the stack stopping ends the watch mid-stream
            for event in self._kube.watch(self._path, timeout_seconds=300):
                refs = event["object"]["spec"]["rules"][0]["backendRefs"]
                if self._armed.is_set() and len(refs) > 1 and refs[1].get("weight") == 0:
                    self.at = time.monotonic()
                    return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--intervals", nargs="+", default=["100ms", "1s", "5s"])
    args = parser.parse_args()
    modes = [*args.intervals, WEBHOOK]
    results: dict[str, list[float]] = {mode: [] for mode in modes}
    with local_stack([error_rate_alert("ModelErrorRateHigh", 0.2, "5s")]) as stack:
        running, simulator = stack.cluster, stack.simulator
        kube = KubeClient.from_environment(str(running.kubeconfig))
        for round_ in range(args.rounds):
            for index, mode in enumerate(modes):
                namespace = f"bench-{index}-{round_}"
                running.kubectl("create", "namespace", namespace)
                alert = "BenchWebhookAlert" if mode == WEBHOOK else "ModelErrorRateHigh"
                interval = "15s" if mode == WEBHOOK else mode
                first, second = model(namespace, "v1", alert, interval), model(namespace, "v2", alert, interval)
                canary = parse_spec(second["spec"]).revision
                simulator.set(namespace, parse_spec(first["spec"]).revision, Behaviour())
                simulator.set(namespace, canary, Behaviour())
                running.kubectl("apply", "-f", "-", input=json.dumps(first))
                poll(lambda ns=namespace: _phase(running, ns) == "Healthy")
                running.kubectl("apply", "-f", "-", input=json.dumps(second))
                poll(lambda ns=namespace: _phase(running, ns) == "Paused")
                route = RouteToStable(kube, namespace)
                route.arm()
                if mode == WEBHOOK:
                    started = time.monotonic()
                    _post_alert(stack.http, stack.webhook_token, namespace, alert)
                else:
                    simulator.set(namespace, canary, Behaviour(error_ratio=0.5))
                    poll(lambda ns=namespace: _alert_firing(stack.prometheus.url, ns), interval=0.02)
                    started = time.monotonic()
                poll(lambda r=route: r.at is not None, interval=0.01)
                results[mode].append(route.at - started)
                print(f"  round {round_ + 1} {mode:<8} {route.at - started:.2f}s", flush=True)
        kube.close()
    print(f"alarm to 100% stable, {args.rounds} rounds each (machine: {os.cpu_count()} cores)")
    print("| alarm | median | max |")
    print("|---|---|---|")
    for mode, values in results.items():
        shown = "webhook" if mode == WEBHOOK else f"polled, pollInterval {mode}"
        print(f"| {shown} | {statistics.median(values):.2f} s | {max(values):.2f} s |")
    return 0


def _phase(running, namespace: str) -> str:
    result = running.kubectl(
        "get", "md", "fraud-scorer", "-n", namespace, "-o", "jsonpath={.status.phase}", check=False
    )
    return result.stdout


def _alert_firing(prometheus_url: str, namespace: str) -> bool:
    query = f'ALERTS{{alertname="ModelErrorRateHigh",alertstate="firing",namespace="{namespace}"}}'
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as response:
        return bool(json.load(response)["data"]["result"])


def _post_alert(http: str, token: str, namespace: str, alert: str) -> None:
    labels = {"alertname": alert, "namespace": namespace}
    body = {
        "version": "4",
        "status": "firing",
        "alerts": [{"status": "firing", "labels": labels, "fingerprint": namespace}],
    }
    request = urllib.request.Request(
        f"http://{http}/alertmanager",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).read()


if __name__ == "__main__":
    sys.exit(main())
