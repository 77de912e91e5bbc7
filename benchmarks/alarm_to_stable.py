"""Benchmark: time from an alarm to the routing object sending 100% of traffic to stable.

Prints figures; asserts nothing. Runs everything on loopback: the local control plane, a real
Prometheus scraping the traffic simulator, and the operator as a separate process.

    .venv/bin/python benchmarks/alarm_to_stable.py [--rounds 3]

- polling: from the moment Prometheus shows ALERTS firing (the rule fires on the canary's error rate)
  to the HTTPRoute's canary weight being 0; rollbackOn.pollInterval is 1s.
- webhook: from the Alertmanager-style POST to the HTTPRoute's canary weight being 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from modelrollout.core.spec import parse_spec
from modelrollout.devcluster.stack import error_rate_alert, local_stack
from modelrollout.simulator.exporter import Behaviour

REPO = Path(__file__).resolve().parents[1]


def poll(check, timeout=120.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("benchmark condition not reached")


def model(namespace: str, version: str, alert: str) -> dict:
    body = yaml.safe_load((REPO / "manifests/samples/fraud-scorer.yaml").read_text())
    body["metadata"]["namespace"] = namespace
    body["spec"].update(
        {
            "replicas": 2,
            "trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "public"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
            "rollbackOn": {"pollInterval": "1s", "alerts": [{"alertname": alert, "labels": {"namespace": namespace}}]},
        }
    )
    body["spec"]["model"]["version"] = version
    return body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    results: dict[str, list[float]] = {"polling": [], "webhook": []}
    with local_stack([error_rate_alert("ModelErrorRateHigh", 0.2, "5s")]) as stack:
        running, simulator = stack.cluster, stack.simulator
        for round_ in range(rounds):
            for mode in ("polling", "webhook"):
                namespace = f"bench-{mode}-{round_}"
                running.kubectl("create", "namespace", namespace)
                alert = "ModelErrorRateHigh" if mode == "polling" else "BenchWebhookAlert"
                first, second = model(namespace, "v1", alert), model(namespace, "v2", alert)
                canary = parse_spec(second["spec"]).revision
                simulator.set(namespace, parse_spec(first["spec"]).revision, Behaviour())
                simulator.set(namespace, canary, Behaviour())
                running.kubectl("apply", "-f", "-", input=json.dumps(first))
                poll(lambda ns=namespace: _phase(running, ns) == "Healthy")
                running.kubectl("apply", "-f", "-", input=json.dumps(second))
                poll(lambda ns=namespace: _phase(running, ns) == "Paused")
                if mode == "polling":
                    simulator.set(namespace, canary, Behaviour(error_ratio=0.5))
                    poll(lambda ns=namespace: _alert_firing(stack.prometheus.url, ns), interval=0.02)
                else:
                    _post_alert(stack.http, stack.webhook_token, namespace, alert)
                started = time.monotonic()
                poll(lambda ns=namespace: _canary_weight(running, ns) == 0, interval=0.02)
                results[mode].append(time.monotonic() - started)
    print(f"alarm to 100% stable, {rounds} rounds each (machine: {os.cpu_count()} cores)")
    for mode, values in results.items():
        print(
            f"  {mode:<8} median {statistics.median(values):.2f}s  max {max(values):.2f}s  "
            f"all {', '.join(f'{v:.2f}' for v in values)}"
        )
    return 0


def _phase(running, namespace: str) -> str:
    result = running.kubectl(
        "get", "md", "fraud-scorer", "-n", namespace, "-o", "jsonpath={.status.phase}", check=False
    )
    return result.stdout


def _canary_weight(running, namespace: str) -> int | None:
    result = running.kubectl(
        "get",
        "httproute",
        "fraud-scorer",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.rules[0].backendRefs[1].weight}",
        check=False,
    )
    return int(result.stdout) if result.stdout.strip() else None


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
